"""Batching and scheduling: the pure core that decides who joins the batch, the thread that
drives one model's engine, and the repository of loaded models."""
