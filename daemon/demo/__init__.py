"""`results-realtime demo`: a seeded school, a simulated lesson, hub, daemon and views."""
