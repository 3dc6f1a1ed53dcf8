"""Customers: profile, identities on every channel, value tier, segments, consent."""
