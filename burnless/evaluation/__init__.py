"""Pair evaluation (``burnless eval``): which planner:executor pair to use, measured on the
user's own tasks.

- ``tasks``   the TASKS.yaml schema, validated with file:line errors
- ``runner``  every (task, pair, repeat) as a real session in its own git worktree; resume;
              the total budget
- ``report``  success with Wilson intervals, cost, the frontier, the recommendation; CSV, HTML
"""
