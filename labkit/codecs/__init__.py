"""Serialization (chapter 04): one thin interface over JSON, MessagePack, Protobuf, YAML, CBOR
and Avro, a `DecodeError` for bytes that are truncated, oversized or hostile, versioned
payloads with migrations, and the schema-evolution experiments. Pure: no I/O; each codec
imports its library only when used, so `import labkit.codecs` stays light.
"""
