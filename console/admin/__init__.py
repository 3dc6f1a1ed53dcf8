"""Administration of the floor (issue #11 item 4): queues, skills, agents, teams, wrap-up codes,
canned responses and users, each a JSON API and console pages made by one kit (``kit``) from
one description per entity (``entities``)."""
