# The two setup commands (see README.md): `make demo` and `make test`.
SWIFT ?= swift
QCODE := .build/release/qcode
DEMO_FLAGS ?=

.PHONY: bootstrap bootstrap-test build demo test bench clean

bootstrap:
	@scripts/bootstrap

# The real-model tests run the 0.5B model (fast enough for CI); the product
# default is the 1.5B (`make demo`, `qcode solve`).
bootstrap-test:
	@QCODE_MODEL=0.5b scripts/bootstrap

build: bootstrap
	$(SWIFT) build -c release

# Solve every example end to end with the embedded model and the real jail,
# through the daemon, with the default settings. `qcode solve` exits 1 when the
# model's program fails its tests (an answer, not a crash) and 2 on an error:
# only the latter fails the demo.
demo: build
	@status=0; for task in examples/*/task.json; do \
	  echo "=== $$task"; \
	  $(QCODE) solve $$task $(DEMO_FLAGS); rc=$$?; \
	  if [ $$rc -gt 1 ]; then echo "demo: qcode solve $$task crashed (exit $$rc)"; status=1; fi; \
	  echo; \
	done; \
	$(QCODE) stop >/dev/null 2>&1 || true; \
	if [ $$status -ne 0 ]; then echo "demo: FAILED (see the errors above)"; exit 1; fi; \
	echo "demo finished (a FAIL above is the model's wrong answer, not a crash)"

test: bootstrap-test
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --no-parallel

bench: build
	scripts/bench

clean:
	rm -rf .build
