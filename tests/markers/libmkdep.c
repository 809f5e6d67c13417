/*
 * libmkdep.c — libmkdep.so, which needs libmkshared.so: dl.c dlopens it, so libmkshared.so
 * arrives as a dependency of a dlopen, and a waiting marker libmkshared.so:shared_work must
 * resolve then.  Knows nothing about arenashim.
 */
long shared_work(int call, int count, int escape);

long dep_work(int call, int count)
{
    return shared_work(call, count, 0) + 1;
}
