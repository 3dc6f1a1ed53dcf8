"""Routing: agents, skills, queues, rule sets and the matching engine."""
