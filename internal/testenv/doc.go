// Package testenv decides whether a test that needs something from its
// environment (root, a loop device, FUSE, fio, io_uring) may run here.
//
// On a developer laptop such a test skips with the reason. When the
// environment variable AIODIO_REQUIRE is "all" (CI sets it) or names the
// requirement in a comma-separated list, a missing requirement fails the test
// instead: no environment skip passes silently in CI.
package testenv
