"""Host applications (their own login, SSO) asking twofa "what now?" with a workspace API key."""
