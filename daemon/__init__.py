"""results-realtime: live teacher results via SQL triggers, an asyncpg daemon and Supabase Realtime."""

__version__ = "0.1.0"
