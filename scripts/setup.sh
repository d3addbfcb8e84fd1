#!/usr/bin/env bash
# Installs what qtrain needs to build and run, and only what is missing:
# a C toolchain, pkg-config, libclang (bindgen for mpi-sys), the MPI of QTRAIN_MPI
# (OpenMPI by default, or MPICH) and libhdf5.
# On a machine without apt or root it prints what to install (or `module load`) and fails.
set -euo pipefail

missing=()
command -v cc >/dev/null 2>&1 || missing+=(build-essential)
command -v make >/dev/null 2>&1 || missing+=(build-essential)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
# The MPI of QTRAIN_MPI (openmpi or mpich, scripts/mpi-env.sh): its compiler wrapper
# (in the -dev package, with the headers) and its launcher, each recognised by what it
# says it is, not by its name: a plain `mpicc` may belong to the other MPI.
source "$(dirname "$0")/mpi-env.sh"
case "$QTRAIN_MPI" in
  openmpi) packages=(libopenmpi-dev openmpi-bin) ;;
  mpich) packages=(libmpich-dev mpich) ;;
esac
mpi_compiler >/dev/null || missing+=("${packages[0]}")
mpi_launcher >/dev/null || missing+=("${packages[1]}")
pkg-config --exists hdf5 2>/dev/null || missing+=(libhdf5-dev)
command -v h5dump >/dev/null 2>&1 || missing+=(hdf5-tools)
# bindgen needs libclang.so (not only libclang-cpp): look where Debian and LLVM put it.
if ! ls /usr/lib/llvm-*/lib/libclang.so* /usr/lib/x86_64-linux-gnu/libclang*.so* >/dev/null 2>&1 \
   && [ -z "${LIBCLANG_PATH:-}" ]; then
  missing+=(libclang-dev)
fi

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: system dependencies present ($QTRAIN_MPI: $(mpi_launcher), $(mpi_compiler); HDF5, libclang, pkg-config)"
else
  # de-duplicate while keeping order
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | awk '!seen[$0]++')
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    cat >&2 <<MSG
setup: missing system packages: ${missing[*]}
  Debian/Ubuntu (as root): apt-get install -y --no-install-recommends ${missing[*]}
  On a cluster: module load $QTRAIN_MPI hdf5 llvm   (names vary: see 'module avail')
  Then set LIBCLANG_PATH to the folder holding libclang.so if it is not in a standard place.
MSG
    exit 1
  fi
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found; install Rust (https://rustup.rs) or 'module load rust'" >&2
  exit 1
fi
