"""The program each sandbox starts with (its source is passed to ``python -c``).

It blocks on stdin for one job header (8-byte big-endian length + a ``marshal``-ed dict), so a
pooled sandbox can be started before its job exists; then it runs exactly that one job and the
sandbox ends. Python code runs in this already-started interpreter (that is what makes the pool
fast); bash and commands replace the process with ``execve``. The rest of stdin belongs to the
job. Imports only builtins (``json``/``runpy`` would double the start-up time); no Tether code
is inside the sandbox.
"""

import marshal
import os
import sys

READY = b"\x1etether-sandbox-ready\n"


def _read_exact(n):
    buf = b""
    while len(buf) < n:
        chunk = os.read(0, n - len(buf))
        if not chunk:
            os._exit(0)  # host went away before sending a job: nothing to do
        buf += chunk
    return buf


def _main():
    os.write(2, READY)  # proves to the host that setup succeeded and the stub is running
    size = int.from_bytes(_read_exact(8), "big")
    job = marshal.loads(_read_exact(size))
    env = job["env"]
    os.environ.clear()
    os.environ.update(env)
    os.chdir(job["cwd"])
    kind = job["kind"]
    for fd, key in ((1, "stdout_file"), (2, "stderr_file")):
        if job.get(key):
            out = os.open(job[key], os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
            os.dup2(out, fd)
            os.close(out)
    if kind == "argv":
        argv = job["argv"]
        try:
            os.execvpe(argv[0], argv, env)
        except FileNotFoundError:
            sys.stderr.write(f"tether-sandbox: command not found: {argv[0]}\n")
            os._exit(127)
        except PermissionError:
            sys.stderr.write(f"tether-sandbox: permission denied: {argv[0]}\n")
            os._exit(126)
    tmp = job["tmp"]
    os.makedirs(tmp, exist_ok=True)
    path = tmp + ("/main.py" if kind == "python" else "/main.sh")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(job["code"])
    if kind == "bash":
        try:
            os.execve("/bin/bash", ["bash", path], env)
        except FileNotFoundError:
            sys.stderr.write("tether-sandbox: interpreter not found: /bin/bash\n")
            os._exit(127)
    sys.argv = [path]
    sys.path[0] = job["cwd"]
    g = {"__name__": "__main__", "__file__": path, "__builtins__": __builtins__}
    rc = 0
    try:
        code = compile(job["code"], path, "exec")
        del job
        exec(code, g)
    except SystemExit as e:
        if e.code is None:
            rc = 0
        elif isinstance(e.code, int):
            rc = e.code & 0xFF
        else:
            sys.stderr.write(f"{e.code}\n")
            rc = 1
    except BaseException as e:
        import traceback

        tb = e.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename != path:
            tb = tb.tb_next
        traceback.print_exception(type(e), e, tb)
        rc = 1
    # Skip interpreter finalisation (the sandbox is destroyed anyway) but keep what programs rely
    # on at exit: non-daemon threads finish, atexit handlers run, buffers are flushed.
    threading = sys.modules.get("threading")
    if threading is not None:
        threading._shutdown()
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            rc = rc or 120
    os._exit(rc)

_main()
