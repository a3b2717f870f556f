"""The Responses <-> Chat Completions bridge: profiles (one row per provider), request and response mapping."""
