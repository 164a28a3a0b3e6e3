"""A ``--cmd`` program speaking the process protocol with one fault, chosen by its argument.

    python program.py MODE

MODE: correct, closed-stdout, huge-exponent, huge-decimal, invalid-utf8, long-line, markdown,
slow-with-child (answers slowly, and has started a child that sleeps: the process group must
end with the checker; each answer is counted as tests/faults/subjects.py's slow calls are).
"""

import json
import os
import subprocess
import sys
import time


def _step(w, b, x, t, lr):
    y = w * x + b
    r = y - t
    g = r * x
    return {"y": y, "dL_dy": r, "loss": 0.5 * (r * r), "dL_dw": g, "dL_db": r,
            "w_new": w - lr * g, "b_new": b - lr * r}


def main(mode: str) -> None:
    out = sys.stdout
    if mode == "slow-with-child":
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
    for line in sys.stdin:
        req = json.loads(line)
        if "id" not in req:
            continue
        if req["format"] != "float64":
            out.write(json.dumps({"id": req["id"], "unsupported": "float64 only"}) + "\n")
            out.flush()
            continue
        v = [float.fromhex(req["inputs"][k]["hex"]) for k in ("w", "b", "x", "t", "lr")]
        outputs = {k: float(q).hex() for k, q in _step(*v).items()}
        if mode == "closed-stdout":
            os.close(1)
            sys.stdout = open(os.devnull, "w")
            time.sleep(3600)
        elif mode == "huge-exponent":
            outputs["y"] = "0x1p-99999999999"
        elif mode == "huge-decimal":
            outputs["y"] = "1e-999999999"
        elif mode == "invalid-utf8":
            os.write(1, b'{"id": "\xff\xfe"}\n')
            continue
        elif mode == "long-line":
            os.write(1, b"x" * (3 << 20))
            continue
        elif mode == "markdown":
            out.write(json.dumps({"id": req["id"], "outputs": dict(
                outputs, y="```\n# Forged heading\n<img src=x onerror=alert(1)>")}) + "\n")
            out.flush()
            continue
        elif mode == "slow-with-child":
            time.sleep(0.05)
            if os.environ.get("NEURONSPEC_FAULT_CALLS"):
                with open(os.environ["NEURONSPEC_FAULT_CALLS"], "ab") as f:
                    f.write(b".")
        out.write(json.dumps({"id": req["id"], "outputs": outputs}) + "\n")
        out.flush()


if __name__ == "__main__":
    main(sys.argv[1])
