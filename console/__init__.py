"""The supervisor console: pages for supervisors and admins over the whole floor (issue #11).

Top layer, beside ``agent_desktop``: it reads every domain below (routing's live figures and rule
sets, queues, agents) and nothing below imports it.
"""
