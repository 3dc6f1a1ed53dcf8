"""Switchboard wiring: settings, database, Redis, auth, errors and the app factory.

Domain code lives in the top-level domain packages (customers, interactions, routing,
agent_desktop, workforce); this package only connects them.
"""
