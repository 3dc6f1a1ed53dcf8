"""Workforce: agents, skills and queues, the people of the floor and how they are organised."""
