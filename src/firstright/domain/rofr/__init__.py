"""The first-refusal workflow, pure (specs/ROFR.md).

``states`` (states, gates, outcomes) · ``events`` (the closed event vocabulary, timers) ·
``terms`` (term sets, matching and release comparisons, cash equivalents) · ``contract`` (the
clauses a request is judged by, scope) · ``other_clauses`` (API exclusivity, ship-first) ·
``decision`` (decisions and their explanations) · ``request`` (the state of one request) ·
``machine`` (``open_request``, ``step``, ``next_timer``; the API is in its docstring) ·
``outcome`` (outcome and allocation) · ``errors``.
"""
