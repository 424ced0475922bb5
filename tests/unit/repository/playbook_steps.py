"""The steps of a phase playbook as its plays name them (``vars: __phaseN_step``), in order."""

import yaml


def steps_in_plays(path, step_variable):
    """Each step once, in the order of the plays; the last play (the summary) reports under the last step."""
    steps = []
    for play in yaml.safe_load(path.read_text())[:-1]:
        step = play["vars"][step_variable]
        if not steps or steps[-1] != step:
            steps.append(step)
    return steps
