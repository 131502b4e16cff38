"""Real services on 127.0.0.1 (chapter 01 onwards): `http` (aiohttp services declared by a
`ServiceSpec`), `faults` (the live fault model), `clients` (labkit's sync and async clients)
and `chain` (a chain of services that propagates a deadline, chapter 05).
"""
