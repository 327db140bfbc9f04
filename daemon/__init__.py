"""results-realtime: live teacher results via SQL triggers, an asyncpg daemon, Supabase Realtime."""

__version__ = "0.1.0"
