"""Chapter experiments: each module is one lab a chapter runs.

- chapter 01: fan-out tail latency (`fanout`);
- chapter 02: poison messages and duplicates (`poison`), competing consumers and prefetch
  (`prefetch`), peak shaving through a queue (`peak_shaving`), the live kitchen (`kitchen`,
  its consumers in `kitchen_cooks`), the tutorial's pub/sub stall (`pubsub_stall`);
- chapter 03: the protocol comparison (`protocol_compare`, its servers and clients in
  `protocol_servers`);
- chapter 06: measuring with a bounded recorder (`recorder`), connection pooling (`pooling`),
  request batching (`batching`), caching and the thundering herd (`caching`), hedged requests
  and The Tail at Scale (`hedging`), queueing formulas and Little's law (`queueing`), overload
  control (`overload`);
- chapter 07: an SLO's burn rate (`slo_lab`), one request traced across four services and the
  broker (`trace_demo`), head and tail sampling (`sampling_lab`);
- chapter 05: contention (`contention`), jitter (`jitter`), choosing a timeout (`timeouts`),
  retry storms (`storm`, its widget in `storm_widget`), retry amplification
  (`amplification`), retries around an open breaker (`breaker_vs_retry`) and the breaker
  timeline (`timeline`).
"""
