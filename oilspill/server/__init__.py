"""The service: HTTP routes, uploads, intake, jobs, the worker pool, expiry and result zips.

Data flows one way: `app` (routes) -> `service` (jobs) -> `runner` (worker pool)
-> a backend -> `results` (one image's files) -> `reports` and `archive` (the zip).
"""
