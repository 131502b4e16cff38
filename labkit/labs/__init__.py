"""Chapter experiments: each module is one lab a chapter runs (contention and storm and
amplification and the breaker timeline in chapter 05; fan-out in chapter 01).
"""
