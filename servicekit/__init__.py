"""servicekit: what every wardwatch service is built from, below the services, above the contract.

* ``servicekit.mqtt`` -- the one MQTT v5 client wrapper (persistent sessions, jittered
  reconnects, per-message completions, reason-code checks);
* ``servicekit.backoff`` -- the one retry schedule;
* ``servicekit.settings`` -- ``WM_*`` settings, read once in each service's entry point;
* ``servicekit.metrics`` -- Prometheus ``/metrics`` (prometheus-client);
* ``servicekit.influx`` -- the InfluxDB HTTP v1 client;
* ``servicekit.tomlio`` -- TOML files in (validated, key paths named) and out (tomli-w);
* ``servicekit.context`` -- the unit context, from a ward file or the registry's URL;
* ``servicekit.faults`` -- message boundaries, dead letters, liveness;
* ``servicekit.runner`` -- logging and signal handling for a service process.

Imports only the contract (``wardwire``) and third-party libraries. Modules are imported one by
one (nothing is re-exported here), so a gateway loading ``servicekit.mqtt`` never loads httpx.
"""
