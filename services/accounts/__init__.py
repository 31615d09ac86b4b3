"""People's accounts: sign-in, sessions, passwords and API tokens; hosted by the ledger (docs/security.md)."""
