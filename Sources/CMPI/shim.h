// Open MPI's C API from Debian's libopenmpi-dev (data-parallel training: allreduce of gradients).
#include <mpi.h>
