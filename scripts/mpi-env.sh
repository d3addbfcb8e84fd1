# Sourced by the scripts: lets OpenMPI run as root (containers, CI) and run more ranks
# than cores (oversubscription, for the 4-rank tests on 2-core machines). Both are
# OpenMPI's documented environment switches and harmless as a normal user.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1
