"""Parsing and verifying what providers call back with: SendGrid events, Twilio status and inbound SMS."""
