"""The CometAPI/Kling simulator (server.py): a stand-in for demos and tests. The product never
imports it, and it shares no code with the client, so each checks the other."""
