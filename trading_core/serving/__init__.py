"""The live decision service (issue 18): bars in over NATS JetStream (or in-process), decisions out.

Transport layer (this package so far):

* :mod:`~trading_core.serving.subjects`: ``bars.<interval>.<symbol token>``, ``decisions.<policy>``,
  ``dlq.bars``, with a reversible symbol encoding that can never add a subject level or a wildcard;
* :mod:`~trading_core.serving.messages`: the versioned ``BarMessage``, ``DecisionMessage``, ``DeadLetter``;
* :mod:`~trading_core.serving.validation`: a received message -> a bar or a dead letter with a reason code;
* :mod:`~trading_core.serving.transport`: ``BarSource`` / ``DecisionSink`` / ``DeadLetterSink`` on NATS
  JetStream (``NatsTransport``) or asyncio (``InProcessTransport``), chosen by ``TRADING_NATS_URL``;
* :mod:`~trading_core.serving.slices`: received bars grouped by bar time for the decision loop;
* :mod:`~trading_core.serving.replay`: lake bars of a dataset version published in bar-time order.

docs/serving.md describes the subjects, the schemas, the streams and the dead-letter reason codes.
"""
