"""Closing the loop (issue #12): surveys on every channel, agent experience beside customer
experience, alerts that become owned follow-ups, and the customer journey across channels.

It sits above routing (its alert rules use the routing condition language) and below the agent
desktop and the console, which both show follow-ups to their owners.
"""
