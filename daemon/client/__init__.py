"""The results client: the matrix model, its reducer, the subscription and refetching."""
