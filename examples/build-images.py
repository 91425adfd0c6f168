#!/usr/bin/python3
"""Builds the example model server's images from the Python and PyTorch installed on this host.

  OUT/model-server-rootfs.tar
                             a container root filesystem: /srv/serve.py, /srv/model.pt (the model,
                             trained here at build time) and exactly the Python, PyTorch and
                             shared libraries the server uses, plus busybox for a shell
  OUT/model-server-vm/disk.raw
                             a VM image: the same files on an ext4 disk that boots by itself
                             (extlinux, Debian's cloud kernel); its init mounts the disk
                             read-only, takes an address by DHCP and serves on port 8080

Copy them to the server's image import directory and import them:
`berth image import model-server --rootfs model-server-rootfs.tar` and
`berth image import model-server-vm --disk disk.raw`.

What the server uses is found by running it once: it loads the model, answers /healthz and
/predict, and then lists the modules it imported and the files it mapped. Every package those
modules come from is copied whole, with the standard library, so an import made later still
finds its files. The result is checked by running the server inside the rootfs (chroot).

Usage: examples/build-images.py OUT [--no-vm]   (needs root for the checks and the VM disk)
A second run with the same inputs only checks a stamp file.
"""
import argparse
import fcntl
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SERVE = os.path.join(HERE, "serve", "serve.py")
PYTHON = "/usr/bin/python3"
GUEST_PORT = 8080

# Run in a child: serve.py in a thread, asked once for each route, then what it loaded.
TRACER = r"""
import json, os, runpy, sys, threading, time, urllib.request
serve, model, port, out = sys.argv[1:5]
sys.argv = [serve, "--model", model, "--port", port]
threading.Thread(target=lambda: runpy.run_path(serve, run_name="__main__"), daemon=True).start()
base = "http://127.0.0.1:%s" % port
for _ in range(600):
    try:
        urllib.request.urlopen(base + "/healthz", timeout=1).read()
        break
    except OSError:
        time.sleep(0.1)
body = json.dumps({"inputs": [[1.0] * 8]}).encode()
urllib.request.urlopen(urllib.request.Request(base + "/predict", data=body), timeout=10).read()
files = set()
with open("/proc/self/maps") as maps:
    for line in maps:
        parts = line.split()
        if len(parts) >= 6 and parts[5].startswith("/"):
            files.add(parts[5])
for m in list(sys.modules.values()):
    f = getattr(m, "__file__", None)
    if f:
        files.add(os.path.abspath(f))
with open(out, "w") as o:
    json.dump(sorted(files), o)
os._exit(0)
"""

# The VM's init, on its own disk: the root stays read-only (a restored memory snapshot then
# always finds the disk as it left it), writable places are tmpfs.
VM_INIT = """#!/bin/busybox sh
export PATH=/usr/bin:/bin PYTHONDONTWRITEBYTECODE=1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
for m in failover net_failover virtio_net button evdev; do modprobe $m 2>/dev/null; done
stty -onlcr </dev/console 2>/dev/null
ip link set lo up
for n in /sys/class/net/eth*; do
  [ -e "$n" ] || continue
  i=${n##*/}
  ip link set "$i" up
  (udhcpc -i "$i" -s /etc/udhcpc.script -f -t 0 -T 1 >/dev/null 2>&1 &)
done
echo BERTH-GUEST-READY
# Power off when the ACPI power button is pressed (a stop), else serve until killed.
for e in /sys/class/input/event*; do
  [ -e "$e/device/name" ] || continue
  if grep -q "Power Button" "$e/device/name"; then
    (head -c 1 /dev/input/${e##*/} >/dev/null && echo BERTH-GUEST-POWERDOWN && poweroff -f) &
  fi
done
cd /srv
while true; do
  /usr/bin/python3 /srv/serve.py --model /srv/model.pt --address 0.0.0.0 --port %d
  echo "model server exited with $?; starting it again"
  sleep 1
done
""" % GUEST_PORT

# The guests' DHCP client script, shared with the test images (scripts/build-test-images.sh).
UDHCPC_SCRIPT = os.path.join(HERE, "..", "scripts", "guest-udhcpc.sh")

# Packages whose files a VM guest also needs: the kernel modules for its disk and NIC.
VM_MODULES = [
    "kernel/drivers/virtio/virtio.ko", "kernel/drivers/virtio/virtio_ring.ko",
    "kernel/drivers/virtio/virtio_pci_legacy_dev.ko",
    "kernel/drivers/virtio/virtio_pci_modern_dev.ko", "kernel/drivers/virtio/virtio_pci.ko",
    "kernel/drivers/block/virtio_blk.ko", "kernel/net/core/failover.ko",
    "kernel/drivers/net/net_failover.ko", "kernel/drivers/net/virtio_net.ko",
    "kernel/drivers/acpi/button.ko", "kernel/drivers/input/evdev.ko",
]


def say(message):
    print("build-images: " + message, file=sys.stderr, flush=True)


def fail(message):
    say(message)
    sys.exit(1)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def copy_file(src, root):
    """Copies host file src to the same path under root, its contents through any links."""
    dst = root + src
    if os.path.lexists(dst):
        return
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    shutil.copy2(src, dst, follow_symlinks=True)


def copy_tree(src, root):
    dst = root + src
    if os.path.lexists(dst):
        return
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    shutil.copytree(src, dst, symlinks=True,
                    ignore=shutil.ignore_patterns("test", "tests", "idlelib", "tkinter",
                                                  "ensurepip", "lib2to3", "turtledemo"))


def copy_path(src, root):
    """Copies host path src under root as it is: a link stays a link, and what it names comes too."""
    seen = set()
    while src not in seen and os.path.lexists(src):
        seen.add(src)
        dst = root + src
        if os.path.lexists(dst):
            return
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if not os.path.islink(src):
            (copy_tree if os.path.isdir(src) else copy_file)(src, root)
            return
        target = os.readlink(src)
        os.symlink(target, dst)
        src = os.path.normpath(os.path.join(os.path.dirname(src), target))


def fill_links(root):
    """Brings in what the links copied so far name outside the rootfs (torch/lib's libraries)."""
    while True:
        missing = []
        for d, dirs, names in os.walk(root):
            for n in dirs + names:
                p = os.path.join(d, n)
                if not os.path.islink(p):
                    continue
                host = p[len(root):]
                target = os.path.normpath(os.path.join(os.path.dirname(host), os.readlink(p)))
                if not os.path.lexists(root + target) and os.path.lexists(target):
                    missing.append(target)
        if not missing:
            return
        for p in missing:
            copy_path(p, root)


def needed_libraries(paths):
    """Every library the dynamic loader finds for these files, by the path it finds it at."""
    found = set()
    for p in paths:
        r = subprocess.run(["ldd", p], capture_output=True, text=True)
        for line in r.stdout.splitlines():
            parts = line.split()
            if "=>" in parts:
                at = parts[parts.index("=>") + 1]
                if at.startswith("/"):
                    found.add(at)
            elif parts and parts[0].startswith("/"):
                found.add(parts[0])
    return found


def package_root(path):
    """The top-level package or module a dist-packages file belongs to."""
    for base in ("/usr/lib/python3/dist-packages/", "/usr/local/lib/python3/dist-packages/"):
        if path.startswith(base):
            top = path[len(base):].split("/")[0]
            return base + top
    return None


def build_rootfs(work):
    model = os.path.join(work, "model.pt")
    say("training the model (serve.py --save-model)")
    subprocess.run([PYTHON, SERVE, "--save-model", model], check=True)
    listing = os.path.join(work, "files.json")
    say("running the server once to list what it uses")
    subprocess.run([PYTHON, "-c", TRACER, SERVE, model, str(free_port()), listing], check=True,
                   timeout=600, stdout=subprocess.DEVNULL)
    with open(listing) as f:
        used = json.load(f)
    root = os.path.join(work, "rootfs")
    os.makedirs(root + "/usr")
    # A merged /usr keeps its links, so the loader's paths (/lib64/...) and /usr/lib... agree.
    for d in ("lib", "lib64", "bin", "sbin"):
        src = "/" + d
        if os.path.islink(src):
            os.symlink(os.readlink(src), root + src)
            os.makedirs(os.path.join(root, os.readlink(src).lstrip("/")), exist_ok=True)
    stdlib = "/usr/lib/python3.%d" % sys.version_info.minor
    copy_tree(stdlib, root)
    tops = set()
    files = []
    for p in used:
        if not os.path.isfile(p) or p.startswith(SERVE) or p.startswith(work):
            continue
        top = package_root(p)
        if top:
            tops.add(top)
        elif not p.startswith(stdlib + "/"):
            files.append(p)
    for top in sorted(tops):
        # A package's .dist-info / .egg-info next to it is what importlib.metadata reads.
        if os.path.isdir(top):
            copy_tree(top, root)
        else:
            copy_file(top, root)
        base = os.path.dirname(top)
        name = os.path.basename(top).split(".")[0]
        for entry in os.listdir(base):
            if entry.startswith(name + "-") and entry.endswith((".dist-info", ".egg-info")):
                src = os.path.join(base, entry)
                (copy_tree if os.path.isdir(src) else copy_file)(src, root)
    python = os.path.realpath(PYTHON)
    files.append(python)
    shared = [p for p in files if ".so" in os.path.basename(p)] + [python]
    for top in tops:
        for d, _, names in os.walk(top):
            shared += [os.path.join(d, n) for n in names if ".so" in n]
    for p in sorted(set(files) | needed_libraries(shared)):
        copy_path(p, root)
    fill_links(root)
    # The loader's own name for itself, and python3 as the examples call it.
    os.makedirs(root + "/usr/bin", exist_ok=True)
    if not os.path.lexists(root + "/usr/bin/python3"):
        os.symlink(os.path.basename(python), root + "/usr/bin/python3")
    copy_file("/lib64/ld-linux-x86-64.so.2", root)
    # busybox: a shell and the tools an exec probe or a VM's init uses.
    busybox = shutil.which("busybox")
    if not busybox:
        fail("busybox not found; install busybox-static")
    os.makedirs(root + "/usr/bin", exist_ok=True)
    shutil.copy2(os.path.realpath(busybox), root + "/usr/bin/busybox")
    for applet in subprocess.run([busybox, "--list"], capture_output=True, text=True,
                                 check=True).stdout.split():
        link = root + "/usr/bin/" + applet
        if applet != "busybox" and not os.path.lexists(link):
            os.symlink("busybox", link)
    for d in ("dev", "proc", "sys", "tmp", "run", "root", "etc", "srv", "var/tmp"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    os.chmod(root + "/tmp", 0o1777)
    os.chmod(root + "/var/tmp", 0o1777)
    with open(root + "/etc/passwd", "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
    with open(root + "/etc/group", "w") as f:
        f.write("root:x:0:\nnogroup:x:65534:\n")
    with open(root + "/etc/hostname", "w") as f:
        f.write("model-server\n")
    shutil.copy2(SERVE, root + "/srv/serve.py")
    shutil.copy2(model, root + "/srv/model.pt")
    for p in ("/srv", "/srv/serve.py", "/srv/model.pt"):
        os.chmod(root + p, 0o755 if p == "/srv" else 0o644)
    return root


def check_rootfs(root):
    """The server, run inside the rootfs, loads its model and answers."""
    if os.geteuid() != 0:
        say("not root: the rootfs is not checked by running it")
        return
    port = free_port()
    # A mount namespace of its own gives it /dev and /proc, and takes them along when it ends.
    run = ('mount --rbind /dev "$0/dev" && mount -t proc proc "$0/proc" && '
           'exec chroot "$0" /usr/bin/python3 /srv/serve.py --model /srv/model.pt --port "$1"')
    server = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", run,
                               root, str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                body = json.dumps({"inputs": [[1.0] * 8]}).encode()
                answer = urllib.request.urlopen(urllib.request.Request(
                    "http://127.0.0.1:%d/predict" % port, data=body), timeout=5).read()
                json.loads(answer)["outputs"]
                return
            except OSError:
                if server.poll() is not None:
                    fail("the server does not run in the rootfs: " +
                         server.stderr.read().decode(errors="replace")[-2000:])
                if time.monotonic() > deadline:
                    fail("the server in the rootfs did not answer in 120 s")
                time.sleep(0.2)
    finally:
        server.kill()
        server.wait()


def kernel():
    found = sorted(p for p in os.listdir("/boot") if p.startswith("vmlinuz-") and
                   p.endswith("-cloud-amd64"))
    if not found:
        fail("no /boot/vmlinuz-*-cloud-amd64; install linux-image-cloud-amd64")
    return "/boot/" + found[-1]


def build_vm(root, out_disk, work):
    """The rootfs with a kernel, modules, an init and extlinux, as a raw ext4 disk that boots."""
    for tool in ("mkfs.ext4", "extlinux"):
        if not shutil.which(tool):
            fail(tool + " not found; install e2fsprogs and extlinux (scripts/setup.sh does)")
    vm = os.path.join(work, "vmroot")
    subprocess.run(["cp", "-a", "--reflink=auto", root, vm], check=True)
    vmlinuz = kernel()
    version = os.path.basename(vmlinuz)[len("vmlinuz-"):]
    os.makedirs(vm + "/boot/extlinux")
    shutil.copy2(vmlinuz, vm + "/boot/vmlinuz")
    for m in VM_MODULES:
        src = "/lib/modules/%s/%s" % (version, m)
        if os.path.exists(src):
            dst = vm + "/lib/modules/%s/%s" % (version, m)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copy2(src, dst)
    for f in ("modules.order", "modules.builtin", "modules.builtin.modinfo"):
        if os.path.exists("/lib/modules/%s/%s" % (version, f)):
            shutil.copy2("/lib/modules/%s/%s" % (version, f), vm + "/lib/modules/%s/" % version)
    subprocess.run(["depmod", "-b", vm, version], check=True)
    # The disk's own root needs virtio_blk before it is mounted: a small initramfs loads it.
    ird = os.path.join(work, "initramfs")
    os.makedirs(ird + "/bin")
    os.makedirs(ird + "/lib/modules")
    shutil.copy2(vm + "/usr/bin/busybox", ird + "/bin/busybox")
    for m in VM_MODULES[:6]:
        shutil.copy2("/lib/modules/%s/%s" % (version, m), ird + "/lib/modules/")
    with open(ird + "/init", "w") as f:
        f.write("""#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /root
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t devtmpfs devtmpfs /dev
for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk; do
  /bin/busybox insmod /lib/modules/$m.ko 2>/dev/null
done
for i in $(/bin/busybox seq 100); do [ -b /dev/vda ] && break; /bin/busybox sleep 0.1; done
/bin/busybox mount -o ro -t ext4 /dev/vda /root || exec /bin/busybox sh
/bin/busybox umount /proc
/bin/busybox mount --move /dev /root/dev
exec /bin/busybox switch_root /root /sbin/init
""")
    os.chmod(ird + "/init", 0o755)
    cpio = subprocess.run("cd %s && find . | sort | cpio -o -H newc --quiet | gzip -1 -n" % ird,
                          shell=True, capture_output=True, check=True)
    with open(vm + "/boot/initrd.img", "wb") as f:
        f.write(cpio.stdout)
    with open(vm + "/sbin/init", "w") as f:
        f.write(VM_INIT)
    os.chmod(vm + "/sbin/init", 0o755)
    os.makedirs(vm + "/etc", exist_ok=True)
    shutil.copy(UDHCPC_SCRIPT, vm + "/etc/udhcpc.script")
    os.chmod(vm + "/etc/udhcpc.script", 0o755)
    with open(vm + "/boot/extlinux/extlinux.conf", "w") as f:
        f.write("DEFAULT berth\nTIMEOUT 0\nPROMPT 0\nLABEL berth\n  LINUX /boot/vmlinuz\n"
                "  INITRD /boot/initrd.img\n"
                "  APPEND root=/dev/vda ro console=ttyS0 quiet panic=-1\n")
    # Room for the files and a margin; the disk is a file the catalog copies sparsely.
    size = sum(os.lstat(os.path.join(d, n)).st_size
               for d, _, names in os.walk(vm) for n in names)
    mib = size // (1 << 20) + 256
    tmp = out_disk + ".tmp"
    subprocess.run(["truncate", "-s", "%dM" % mib, tmp], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "berth-root", "-d", vm, tmp], check=True)
    # extlinux writes its boot sector into the file system it is installed on: the whole disk.
    mnt = tempfile.mkdtemp(dir=work)
    subprocess.run(["mount", "-o", "loop", tmp, mnt], check=True)
    try:
        subprocess.run(["extlinux", "--install", mnt + "/boot/extlinux"], check=True,
                       capture_output=True)
    finally:
        subprocess.run(["umount", mnt], check=True)
    os.rename(tmp, out_disk)


def stamp(no_vm):
    h = hashlib.sha256()
    for p in (__file__, SERVE, PYTHON, UDHCPC_SCRIPT):
        h.update(p.encode())
        with open(os.path.realpath(p), "rb") as f:
            h.update(hashlib.sha256(f.read()).digest())
    h.update(b"no-vm" if no_vm else b"vm")
    if not no_vm:
        h.update(kernel().encode())
    return h.hexdigest()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", help="the directory the images go to")
    parser.add_argument("--no-vm", action="store_true", help="build the container image only")
    args = parser.parse_args()
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    rootfs = os.path.join(out, "model-server-rootfs.tar")
    disk = os.path.join(out, "model-server-vm", "disk.raw")
    want = stamp(args.no_vm)
    stamp_file = os.path.join(out, ".model-server-stamp")
    lock = open(os.path.join(out, ".model-server-lock"), "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        with open(stamp_file) as f:
            if f.read() == want and os.path.isfile(rootfs) and (args.no_vm or
                                                                os.path.isfile(disk)):
                say("up to date in " + out)
                return 0
    except OSError:
        pass
    started = time.monotonic()
    work = tempfile.mkdtemp(prefix=".model-server-", dir=out)
    try:
        root = build_rootfs(work)
        check_rootfs(root)
        if not args.no_vm:
            say("making the VM disk")
            build_vm(root, os.path.join(work, "disk.raw"), work)
        say("packing the rootfs")
        subprocess.run(["tar", "-C", root, "-cf", os.path.join(work, "rootfs.tar"),
                        "--numeric-owner", "--sort=name", "."], check=True)
        if os.path.exists(rootfs):
            os.remove(rootfs)
        shutil.rmtree(os.path.dirname(disk), ignore_errors=True)
        os.rename(os.path.join(work, "rootfs.tar"), rootfs)
        if not args.no_vm:
            os.makedirs(os.path.dirname(disk))
            os.rename(os.path.join(work, "disk.raw"), disk)
        with open(stamp_file, "w") as f:
            f.write(want)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    say("built in %s in %.1f s: rootfs %d MiB" % (out, time.monotonic() - started,
                                                  os.path.getsize(rootfs) >> 20))
    return 0


if __name__ == "__main__":
    sys.exit(main())
