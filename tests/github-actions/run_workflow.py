#!/usr/bin/env python3
"""Run a `workflow_dispatch` workflow on this machine as GitHub Actions would, for the backfill
recipe's test.

    run_workflow.py WORKFLOW STATE_DIR [--rerun-failed] [input=value ...]

Jobs run in `needs` order; a job whose needs did not all succeed is skipped. A matrix of one
list (literal or `fromJSON(...)` of an output) runs one leg per value. Each `run` step runs in
`bash -e`, with the workflow's, job's and step's `env`, and `$GITHUB_OUTPUT` read back as the
step's outputs. `uses:` steps and the step named "install earthcatalog" are skipped (the binary
under test is on PATH). Expressions: `${{ inputs.X }}`, `matrix.X`, `needs.J.outputs.X` (J
must be a direct need, as on GitHub), `steps.S.outputs.X`, `env.X`, `fromJSON(...)`.
`--rerun-failed` is "Re-run failed jobs": jobs and legs that succeeded keep their result and
outputs; failed legs and skipped jobs run again. The results live in STATE_DIR/run.json; the
exit code is 0 when every job succeeded.
"""
import json
import os
import re
import subprocess
import sys
import tempfile

import yaml

EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


def evaluate(expr, ctx):
    m = re.fullmatch(r"fromJSON\((.*)\)", expr)
    if m:
        return json.loads(str(evaluate(m.group(1), ctx)))
    parts = expr.split(".")
    if parts[0] == "needs" and parts[1] not in ctx["needs"]:
        raise SystemExit(f"expression {expr!r}: job {parts[1]!r} is not in this job's needs")
    value = ctx
    for p in parts:
        if not isinstance(value, dict) or p not in value:
            raise SystemExit(f"expression {expr!r}: no {p!r}")
        value = value[p]
    return value


def render(text, ctx):
    """A string with its expressions substituted; a lone expression keeps its type."""
    if not isinstance(text, str):
        return text
    m = EXPR.fullmatch(text.strip())
    if m:
        return evaluate(m.group(1), ctx)
    return EXPR.sub(lambda m: str(evaluate(m.group(1), ctx)), text)


def run_leg(job, ctx, env):
    ctx = dict(ctx, steps={})
    for step in job["steps"]:
        if "uses" in step or step.get("name") == "install earthcatalog":
            continue
        step_env = dict(env)
        step_env.update({k: str(render(v, ctx)) for k, v in step.get("env", {}).items()})
        with tempfile.TemporaryDirectory() as tmp:
            script = os.path.join(tmp, "step.sh")
            output = os.path.join(tmp, "output")
            open(output, "w").close()
            with open(script, "w") as f:
                f.write(render(step["run"], ctx))
            step_env["GITHUB_OUTPUT"] = output
            code = subprocess.run(["bash", "-e", script], env=step_env).returncode
            outputs = dict(
                line.split("=", 1) for line in open(output).read().splitlines() if "=" in line
            )
        if "id" in step:
            ctx["steps"][step["id"]] = {"outputs": outputs}
        if code != 0:
            return "failure", {}
    outs = {k: render(v, ctx) for k, v in job.get("outputs", {}).items()}
    return "success", outs


def main(argv):
    workflow, state_dir = argv[0], argv[1]
    rerun = "--rerun-failed" in argv
    args = dict(a.split("=", 1) for a in argv[2:] if "=" in a)
    with open(workflow) as f:
        wf = yaml.safe_load(f)
    on = wf.get("on", wf.get(True))
    inputs = {}
    for name, spec in on["workflow_dispatch"]["inputs"].items():
        if name in args:
            inputs[name] = args[name]
        elif spec.get("required"):
            raise SystemExit(f"input {name} is required")
        else:
            inputs[name] = spec.get("default", "")
    state_path = os.path.join(state_dir, "run.json")
    state = json.load(open(state_path)) if rerun else {}
    base = {"inputs": inputs, "needs": {}, "matrix": {}}
    env = dict(os.environ)
    env.update({k: str(render(v, base)) for k, v in wf.get("env", {}).items()})
    done = set()
    jobs = wf["jobs"]
    while len(done) < len(jobs):
        for name, job in jobs.items():
            needs = job.get("needs", [])
            needs = [needs] if isinstance(needs, str) else needs
            if name in done or not all(n in done for n in needs):
                continue
            done.add(name)
            previous = state.get(name, {"legs": {}, "outputs": {}})
            if not all(state.get(n, {}).get("conclusion") == "success" for n in needs):
                state[name] = dict(previous, conclusion="skipped")
                print(f"{name}: skipped")
                continue
            ctx = dict(base, needs={n: {"outputs": state[n]["outputs"]} for n in needs})
            job_env = dict(env)
            job_env.update({k: str(render(v, ctx)) for k, v in job.get("env", {}).items()})
            matrix = job.get("strategy", {}).get("matrix")
            if matrix:
                (key, values), = matrix.items()
                legs = [{key: v} for v in render(values, ctx)]
            else:
                legs = [{}]
            results, outputs = dict(previous["legs"]), dict(previous["outputs"])
            for leg in legs:
                label = json.dumps(leg, sort_keys=True)
                if results.get(label) == "success":
                    continue
                results[label], outs = run_leg(job, dict(ctx, matrix=leg), job_env)
                outputs.update(outs)
                print(f"{name} {label}: {results[label]}")
            ok = all(results.get(json.dumps(l, sort_keys=True)) == "success" for l in legs)
            state[name] = {
                "legs": results,
                "outputs": outputs,
                "conclusion": "success" if ok else "failure",
            }
    with open(state_path, "w") as f:
        json.dump(state, f, indent=1)
    return 0 if all(j["conclusion"] == "success" for j in state.values()) else 1


sys.exit(main(sys.argv[1:]))
