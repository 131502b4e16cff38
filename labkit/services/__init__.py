"""Real services on 127.0.0.1 (chapter 01 onwards): `http` (aiohttp services declared by a
`ServiceSpec`), `faults` (the live fault model), `toxics` (connection reset, slow body,
blackhole), `idempotency` (the Idempotency-Key store, chapter 05), `clients` (labkit's sync and
async clients) and `chain` (a chain of services that propagates a deadline, chapter 05).
"""
