# Sourced by the scripts (and by hand: `source scripts/mpi-env.sh`): which MPI to build
# and launch with, and the switches its launcher needs here.
#
#   QTRAIN_MPI=openmpi (default) or mpich. Sets and exports
#     QTRAIN_MPIRUN     that MPI's launcher: mpirun.openmpi / mpiexec.mpich (Debian), or a
#                       plain mpirun / mpiexec that belongs to it (a cluster's module)
#     MPICC             its compiler wrapper, which the mpi crate builds against (a
#                       MPICC set before is kept)
#     CARGO_TARGET_DIR  target-mpich for MPICH (OpenMPI keeps target/): mpi-sys does not
#                       rebuild when MPICC changes, so each MPI needs its own build folder
#     QTRAIN_BIN        the binary of that build
#   Where the chosen MPI is missing, QTRAIN_MPIRUN / MPICC stay unset (scripts/setup.sh
#   installs it, then sources this again).
#
# OpenMPI's switches: run as root (containers, CI) and more ranks than cores (the 4-rank
# tests on 2-core machines); both are documented environment variables, harmless as a
# normal user and ignored by MPICH, whose Hydra launcher allows both by default.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1

export QTRAIN_MPI=${QTRAIN_MPI:-openmpi}

# mpi_flavour PROGRAM: the MPI a compiler wrapper or launcher belongs to (openmpi, mpich,
# or nothing). `mpicc --version` prints the C compiler's version, hence the wrappers' own
# options: OpenMPI's --showme:version, MPICH's -show (its link line names libmpich).
mpi_flavour() {
  local p=$1
  command -v "$p" >/dev/null 2>&1 || return 0
  case "$("$p" --version 2>&1 </dev/null | head -n 2)" in
    *"Open MPI"* | *"OpenRTE"*) echo openmpi; return ;;
    *HYDRA*) echo mpich; return ;;
  esac
  if "$p" --showme:version 2>/dev/null </dev/null | grep -q "Open MPI"; then
    echo openmpi
  elif "$p" -show 2>/dev/null </dev/null | grep -q "mpich"; then
    echo mpich
  fi
}

# mpi_find FLAVOUR CANDIDATE…: the first candidate that belongs to FLAVOUR.
mpi_find() {
  local want=$1 p
  shift
  for p in "$@"; do
    if [ "$(mpi_flavour "$p")" = "$want" ]; then
      command -v "$p"
      return 0
    fi
  done
  return 1
}

# mpi_launcher / mpi_compiler: the chosen MPI's programs (nothing when it is missing).
mpi_launcher() {
  case "$QTRAIN_MPI" in
    openmpi) mpi_find openmpi mpirun.openmpi mpirun mpiexec ;;
    mpich) mpi_find mpich mpiexec.mpich mpiexec mpirun.mpich mpirun ;;
  esac
}
mpi_compiler() {
  case "$QTRAIN_MPI" in
    openmpi) mpi_find openmpi mpicc.openmpi mpicc ;;
    mpich) mpi_find mpich mpicc.mpich mpicc ;;
  esac
}

case "$QTRAIN_MPI" in
  openmpi | mpich) ;;
  *)
    echo "mpi-env.sh: QTRAIN_MPI=$QTRAIN_MPI: use openmpi or mpich" >&2
    return 1 2>/dev/null || exit 1
    ;;
esac
qtrain_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ "$QTRAIN_MPI" = mpich ]; then
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$qtrain_root/target-mpich}
fi
qtrain_target=${CARGO_TARGET_DIR:-target}
case "$qtrain_target" in /*) ;; *) qtrain_target=$qtrain_root/$qtrain_target ;; esac
export QTRAIN_BIN=${QTRAIN_BIN:-$qtrain_target/release/qtrain}
qtrain_found=$(mpi_launcher) && export QTRAIN_MPIRUN=$qtrain_found
qtrain_found=$(mpi_compiler) && export MPICC=${MPICC:-$qtrain_found}
unset qtrain_root qtrain_target qtrain_found
