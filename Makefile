# The whole set-up: `make run` and `make test`.
BUILD ?= build
BUILD_TYPE ?= RelWithDebInfo
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
ifeq ($(CI),true)
CMAKE_FLAGS += -DZBATCH_WERROR=ON
endif

.PHONY: all deps build run test test-fast bench compare clean asan tsan fuzz deb

all: build

deps:
	scripts/install-deps.sh test

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_FLAGS)

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

run: build
	$(BUILD)/zbatch up

test: build
	cd $(BUILD) && ctest --output-on-failure --timeout 300 -j 2

# Everything but the slow fault-injection tests.
test-fast: build
	cd $(BUILD) && ctest --output-on-failure -LE slow -j 2

# The Debian package: build/zbatch_<version>_<arch>.deb, whose Depends dpkg-shlibdeps computes
# (docs/DEPLOYMENT.md). A worker host needs only `apt install ./zbatch_*.deb`.
deb: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS) --target zbatch zbatch_http
	cd $(BUILD) && cpack -G DEB

bench: build
	scripts/install-deps.sh bench
	$(BUILD)/zbatch bench
	bench/compare --zbatch $(BUILD)/zbatch
	bench/http --zbatch $(BUILD)/zbatch

asan:
	scripts/install-deps.sh build
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DZBATCH_SANITIZE=address,undefined
	cmake --build build-asan -j $(JOBS)
	cd build-asan && ctest --output-on-failure -j 2

tsan:
	scripts/install-deps.sh build
	cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DZBATCH_SANITIZE=thread
	cmake --build build-tsan -j $(JOBS)
	cd build-tsan && TSAN_OPTIONS=suppressions=$(CURDIR)/tests/tsan.supp ctest --output-on-failure -j 2

# libFuzzer (clang, ASan + UBSan) on every target of tests/fuzz, FUZZ_SECONDS each, one at a
# time; FUZZ_TARGETS picks some. New inputs go to build-fuzz/corpus/<target>, crashes to
# build-fuzz/artifacts/ (docs/FUZZING.md).
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= $(notdir $(wildcard tests/fuzz/corpus/*))
fuzz:
	scripts/install-deps.sh fuzz
	cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ -DZBATCH_FUZZ=ON
	cmake --build build-fuzz -j $(JOBS)
	@mkdir -p build-fuzz/artifacts
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p build-fuzz/corpus/$$t; \
	  dict=tests/fuzz/dict/$$t.dict; [ -f $$dict ] && dict_flag=-dict=$$dict || dict_flag=; \
	  echo "fuzz: $$t for $(FUZZ_SECONDS) s"; \
	  build-fuzz/tests/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -timeout=10 -print_final_stats=1 \
	    -artifact_prefix=build-fuzz/artifacts/$$t- $$dict_flag build-fuzz/corpus/$$t tests/fuzz/corpus/$$t || exit 1; \
	done

clean:
	rm -rf $(BUILD) build-asan build-tsan build-fuzz
