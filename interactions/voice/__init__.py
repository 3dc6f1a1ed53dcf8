"""Voice through a carrier: webhook adapter, IVR, callbacks and outbound contact policy.

The carrier never talks to routing directly: its webhooks become Interactions through the hub,
and the call follows the interaction's state (queued -> hold loop, connected -> bridge to the agent).
"""
