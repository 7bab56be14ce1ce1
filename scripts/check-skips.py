#!/usr/bin/env python3
"""Fails if a ctest run skipped a test that tests/expected_skips.txt does not list.

Usage: check-skips.py JUNIT_XML EXPECTED_SKIPS BUILD_NAME

JUNIT_XML is what `ctest --output-junit` wrote. ctest counts a skip (gtest's GTEST_SKIP, a shell
test's exit 77 under SKIP_RETURN_CODE) and a disabled test as not failed, so a run in which half
the tests never ran still says "100% tests passed"; this turns each such test into a failure,
named with the reason the test printed, unless the expected-skips file lists it.
"""
import sys
import xml.etree.ElementTree as ET


def expected_skips(path):
    names = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, _, reason = line.partition(" ")
            names[name] = reason.strip()
    return names


def skip_reason(testcase):
    # The test's own words: the SKIP line of a shell test, gtest's "Skipped" message lines.
    out = testcase.findtext("system-out") or ""
    lines = [l.strip() for l in out.splitlines() if l.strip()]
    for i, line in enumerate(lines):
        if line.startswith("SKIP:"):
            return line
        if line.endswith("Skipped") and i + 1 < len(lines):
            return lines[i + 1]
    skipped = testcase.find("skipped")
    if skipped is not None and skipped.get("message"):
        return skipped.get("message")
    return testcase.get("status", "not run")


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    junit, expected_path, build = sys.argv[1:]
    expected = expected_skips(expected_path)
    cases = ET.parse(junit).getroot().iter("testcase")
    skipped = [c for c in cases if c.get("status") in ("notrun", "disabled")]
    unexpected = [c for c in skipped if c.get("name") not in expected]
    for c in skipped:
        if c.get("name") in expected:
            print(f"=== {build}: expected skip: {c.get('name')} ({expected[c.get('name')]})")
    if not unexpected:
        print(f"=== {build}: no unexpected skips ({len(skipped)} expected)")
        return 0
    print(f"=== {build}: FAILED: {len(unexpected)} tests did not run and are not in "
          f"{expected_path}:", file=sys.stderr)
    for c in unexpected:
        print(f"  {c.get('name')}: {skip_reason(c)}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
