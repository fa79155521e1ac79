"""Ansible (ansible-core) as a fleet contender for benches/compare.rs:
the fleet plan as a playbook on an inventory of the same targets.

Settings, Ansible's own fast ones: forks = vmssh's concurrency, pipelining
on, strategy `free` (each host runs ahead on its own), no fact gathering,
ControlMaster with ControlPersist, the cipher every contender negotiates,
and no `-C` (Ansible's default ssh_args compress, which on loopback only
costs CPU).

ansible-playbook forks workers and each runs `ssh`, whose ControlMasters
daemonize: this wrapper is a child subreaper, measures the whole process
tree (CPU of everything it reaped; RSS and threads summed over the tree,
sampled), and ends the ControlMasters when the playbook is done.
"""

import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import measure as m  # noqa: E402

PLAYBOOK = """
- hosts: all
  gather_facts: false
  strategy: free
  tasks:
    - name: command
      shell: mkdir -p {{ vm_dir }} && echo provisioning {{ inventory_hostname }} && uname -a
    - name: file
      copy:
        src: "{{ payload }}"
        dest: "{{ vm_dir }}/payload.bin"
    - name: script
      script: "{{ setup_script }}"
"""


def fleet(opts):
    n = int(opts["vms"])
    ports = m.ports(opts)
    work = tempfile.mkdtemp(prefix="ansible-peer-")
    inv = os.path.join(work, "inventory.ini")
    with open(inv, "w") as f:
        f.write("[all]\n")
        for i in range(n):
            f.write(
                f"vm{i} ansible_host={opts['host']} ansible_port={ports[i % len(ports)]} "
                f"vm_dir={opts['remote-dir']}/ansible-vm{i}\n"
            )
        f.write(
            "\n[all:vars]\n"
            f"ansible_user={opts['user']}\n"
            f"ansible_ssh_private_key_file={opts['key']}\n"
            "ansible_python_interpreter=/usr/bin/python3\n"
            f"payload={opts['file']}\n"
            f"setup_script={opts['script']}\n"
        )
    play = os.path.join(work, "fleet.yml")
    with open(play, "w") as f:
        f.write(PLAYBOOK)
    cfg = os.path.join(work, "ansible.cfg")
    with open(cfg, "w") as f:
        f.write(
            "[defaults]\n"
            f"forks = {opts['concurrency']}\n"
            "host_key_checking = False\n"
            "gathering = explicit\n"
            "retry_files_enabled = False\n"
            f"local_tmp = {work}/local-tmp\n"
            f"remote_tmp = {work}/remote-tmp\n"
            "interpreter_python = /usr/bin/python3\n"
            "[ssh_connection]\n"
            "pipelining = True\n"
            f"control_path_dir = {work}/cp\n"
            "ssh_args = -o ControlMaster=auto -o ControlPersist=60s -o Ciphers=aes128-gcm@openssh.com,aes256-gcm@openssh.com "
            "-o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes -o ConnectionAttempts=30\n"
            "retries = 10\n"
        )
    env = dict(os.environ, ANSIBLE_CONFIG=cfg, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    bindir = os.path.dirname(sys.executable)
    m.become_subreaper()
    tree = m.TreeSampler()
    cpu0 = m.tree_cpu()
    t = time.monotonic()
    proc = subprocess.run(
        [os.path.join(bindir, "ansible-playbook"), "-i", inv, play],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    secs = time.monotonic() - t
    rss, threads = tree.finish()
    # The ControlMasters persist: end and reap them, so their CPU counts.
    m.reap_all(signal.SIGTERM)
    cpu = m.tree_cpu() - cpu0
    failed = n
    for line in proc.stdout.splitlines():
        # PLAY RECAP lines: "vm3 : ok=3 changed=3 unreachable=0 failed=0 ..."
        parts = line.split()
        if len(parts) > 2 and parts[1] == ":" and parts[0].startswith("vm"):
            fields = dict(p.split("=", 1) for p in parts[2:] if "=" in p)
            if fields.get("failed") == "0" and fields.get("unreachable") == "0":
                failed -= 1
    if failed:
        print(proc.stdout[-4000:], file=sys.stderr)
    m.result("secs", secs)
    m.result("failed", failed)
    m.result("cpu", cpu)
    m.result("rss_growth_mib", rss)
    m.result("threads_peak", threads)


if __name__ == "__main__":
    m.main({"fleet": fleet})
