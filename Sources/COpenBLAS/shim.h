// OpenBLAS (CBLAS + the LAPACK routines it bundles) from Debian's libopenblas-dev.
// Debian's OpenBLAS is built with NO_LAPACKE, so the few LAPACK routines used are declared here
// with their Fortran calling convention (all arguments by pointer, column-major).
#include <cblas.h>

void sposv_(const char *uplo, const int *n, const int *nrhs, float *a, const int *lda,
            float *b, const int *ldb, int *info);
void dposv_(const char *uplo, const int *n, const int *nrhs, double *a, const int *lda,
            double *b, const int *ldb, int *info);
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
