// Package e2e holds the whole-stack tests: they build the billing binary,
// run `billing api` and `billing worker` as real processes against the real
// RabbitMQ and MariaDB (each test in its own namespace and database, each
// process on its own loopback ports), drive them with the simulate package
// and check what a user would see: status codes, rows in MySQL, messages in
// queues, /metrics. Faults between the processes and the servers go through
// an in-process toxiproxy the test owns, so these tests run in parallel
// with everything else. Tests that restart the shared servers carry the
// build tag serial and run alone (`make test` runs them after the rest).
package e2e
