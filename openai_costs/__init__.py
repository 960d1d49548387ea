"""The shared core of tap-openai-costs and target-pelanor; it imports neither plugin.

- :mod:`openai_costs.export`: everything known about OpenAI's cost export CSV.
- :mod:`openai_costs.contract`: what the tap sends and the target reads (stream names,
  record types, the state key).
- :mod:`openai_costs.batches`: the BATCH file format both sides agree on.
- :mod:`openai_costs.safe_http`: secrets kept out of output, and bounded retries.
- :mod:`openai_costs.user_errors`: one line per problem the user must fix, exit status 1.
- :mod:`openai_costs.os_errors`: advice that fits a system error (open files, disk space).
- :mod:`openai_costs.work_folder`: a private working folder per process, never left behind.
"""
