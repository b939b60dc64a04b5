# The two setup commands (see README.md): `make demo` and `make test`.
SWIFT ?= swift
QCODE := .build/release/qcode
DEMO_FLAGS ?=

.PHONY: bootstrap build demo test bench clean

bootstrap:
	@scripts/bootstrap

build: bootstrap
	$(SWIFT) build -c release

# Solve every example (the task files, then the three function stubs, which
# stay unchanged: no --write) end to end with the embedded model and the real jail,
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
	for stub in textstats/textstats.py:top_words slugs/slugs.py:slugify deploy_config/deploy_config.py:parse_bool; do \
	  echo "=== examples/$${stub%%:*} --function $${stub##*:}"; \
	  $(QCODE) solve examples/$${stub%%:*} --function $${stub##*:} $(DEMO_FLAGS); rc=$$?; \
	  if [ $$rc -gt 1 ]; then echo "demo: qcode solve examples/$${stub%%:*} crashed (exit $$rc)"; status=1; fi; \
	  echo; \
	done; \
	$(QCODE) stop >/dev/null 2>&1 || true; \
	if [ $$status -ne 0 ]; then echo "demo: FAILED (see the errors above)"; exit 1; fi; \
	echo "demo finished (a FAIL above is the model's wrong answer, not a crash)"

test: bootstrap
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --no-parallel

bench: build
	scripts/bench

clean:
	rm -rf .build
