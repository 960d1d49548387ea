"""Local stand-ins for the outside world, for the demo, the tests and the benchmark.

- :mod:`local_sandboxes.pelanor`: Pelanor's upload endpoint (``pelanor-sandbox``);
- :mod:`local_sandboxes.openai_costs_api`: OpenAI's Costs and Projects endpoints;
- :mod:`local_sandboxes.openai_sandbox`: that fake serving export files (``openai-sandbox``).
- :mod:`local_sandboxes.serving`: how both commands serve until Ctrl-C or SIGTERM.

They listen on loopback addresses only, use the standard library only and import nothing of
the plugins: they follow the published specs, so a mistake in the plugins cannot hide in
them too.
"""
