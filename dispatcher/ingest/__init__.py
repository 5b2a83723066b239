"""Monitoring ingest: alerts from Prometheus Alertmanager, Grafana and a generic signed JSON body.

Each source's payload is validated (pydantic) and turned into one ``AlertGroup``; ``ingest`` then opens,
reopens or moves the incident the group names and tells the on-call (internal) audience. Monitoring
never announces a recovery as "resolved": a resolved group moves the incident to ``monitoring`` and a
person confirms. Whether monitoring may also publish to the public is the policy's
``monitoring.may_publish_public``.
"""
