/*
 * scan_kernel_generic.c — the scan's word kernel where no vectorised one exists.
 *
 * Layer: core, architecture-specific (the fallback).  The portable loop of scan.c serves;
 * an architecture with a faster kernel adds a scan_kernel_<arch>.c beside this one and
 * core/meson.build picks it.
 */
#include "scan.h"

scan_kernel_fn scan_kernel_select(void)
{
    return scan_kernel_scalar;
}
