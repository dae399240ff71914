# `sam build` (Metadata: BuildMethod: makefile in template.yaml) runs `make build-<LogicalId>`
# once per function, with ARTIFACTS_DIR set to that function's folder under .aws-sam/build.
#
# The first call builds every function of the template in one `cargo lambda build` (release,
# arm64, provided.al2023), exactly what CI builds; the later calls find them built and only
# copy their `bootstrap`. One cargo run shares every dependency and the two cores between the
# functions, where one build per function (BuildMethod: rust-cargolambda) paid a full link each.
#
# Which binary a function runs is its Metadata.BuildProperties.Binary (also read by the local
# gateway, scripts/test and the OpenAPI check). samconfig.toml builds in the source folder
# (build_in_source), so the target folder is not copied into a scratch folder per function.

TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
BINARIES := $(shell sed -n 's/^ *Binary: *//p' template.yaml | sort -u)

.PHONY: functions
functions:
	cargo lambda build --release --arm64 $(addprefix --bin ,$(BINARIES))

build-%: functions
	@test -n "$(ARTIFACTS_DIR)" || { echo "ARTIFACTS_DIR is not set: sam build sets it" >&2; exit 1; }
	@bin=$$(awk -v id='  $*:' '$$0 == id {f = 1; next} f && /^  [A-Za-z]/ {exit} f && $$1 == "Binary:" {print $$2; exit}' template.yaml); \
	  test -n "$$bin" || { echo "template.yaml: $* has no Metadata.BuildProperties.Binary" >&2; exit 1; }; \
	  cp "$(TARGET_DIR)/lambda/$$bin/bootstrap" "$(ARTIFACTS_DIR)/bootstrap"
