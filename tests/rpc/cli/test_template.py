"""The Go template engine behind every --format: podman's documented examples, the report
package's own tests (containers/common pkg/report), and Go's text/template semantics."""

from __future__ import annotations

import pytest

from varpod.rpc.cli.common import tabwrite
from varpod.rpc.cli.goprintf import sprintf
from varpod.rpc.cli.template import (
    GoMap,
    GoTime,
    Template,
    TemplateError,
    View,
    camel_words,
    go_float,
    podman_shaped,
    render,
    render_one,
)

ROWS = [{"ID": "c061a0839e", "Value": "one"}, {"ID": "f10fc2e11057", "Value": "two"},
        {"ID": "1eb6fab5aa8f4b5cbfd3e66aa35e9b2a", "Value": "three"}]
HEADERS = {"ID": "Identity", "Value": "Value"}


def run(text: str, data: object) -> str:
    return Template("t", text).execute(data)


# -- containers/common pkg/report: formatter_test.go's TestFormatter_ParseTable ---------------


@pytest.mark.parametrize(("fmt", "expected"), [
    ("table {{ .ID}}", "IDENTITY\nc061a0839e\nf10fc2e11057\n1eb6fab5aa8f4b5cbfd3e66aa35e9b2a\n"),
    ("table {{ .ID}}\n", "IDENTITY\nc061a0839e\nf10fc2e11057\n1eb6fab5aa8f4b5cbfd3e66aa35e9b2a\n"),
    ("table {{ .ID}}\\n", "IDENTITY\nc061a0839e\nf10fc2e11057\n1eb6fab5aa8f4b5cbfd3e66aa35e9b2a\n"),
    ("table {{.ID}}\t{{.Value}}",
     "IDENTITY                          VALUE\nc061a0839e                        one\n"
     "f10fc2e11057                      two\n1eb6fab5aa8f4b5cbfd3e66aa35e9b2a  three\n"),
    ("{{range .}}{{.ID}}\tID{{end}}",
     "c061a0839e\tIDf10fc2e11057\tID1eb6fab5aa8f4b5cbfd3e66aa35e9b2a\tID\n"),
    ("{{range .}}{{.ID}}\tID\n{{end}}",
     "c061a0839e\tID\nf10fc2e11057\tID\n1eb6fab5aa8f4b5cbfd3e66aa35e9b2a\tID\n\n"),
    ("{{range .}}{{.ID}}{{end -}}", "c061a0839ef10fc2e110571eb6fab5aa8f4b5cbfd3e66aa35e9b2a"),
    ('{{range .}}{{printf "\\n"}}{{end -}}', "\n\n\n"),  # podman#13446
    ("ID\t{{.ID}}", "ID\tc061a0839e\nID\tf10fc2e11057\nID\t1eb6fab5aa8f4b5cbfd3e66aa35e9b2a\n"),
])
def test_the_report_packages_own_cases(fmt, expected):
    # Headers are upper-cased as podman's Headers() does with its overrides.
    assert render(fmt, ROWS, name="t", headers=HEADERS) == expected


def test_tabwriter_is_gos_with_podmans_settings():
    text = "Value\tIdent\nIdentity\tID\nValue\tIdent\nc061a0839e\tIDf10fc2e11057\tID1eb6\tID\n"
    assert tabwrite(text) == ("Value       Ident\nIdentity    ID\nValue       Ident\n"
                              "c061a0839e  IDf10fc2e11057  ID1eb6      ID\n")
    # column blocks: a line without a cell in a column ends that column's block
    assert tabwrite("a\tb\nlong-cell-here\tc\nx\ny\tz\n") == (
        "a               b\nlong-cell-here  c\nx\ny           z\n")


# -- podman's documented examples ------------------------------------------------------------


def test_ps_man_page_example():
    rows = [View({"Id": "02f65160e14ca" + "0" * 51, "Labels": {"tier": "backend"}},
                 {"ID": "02f65160e14c", "Image": "redis:alpine", "Labels": GoMap({"tier": "backend"}),
                  "Mounts": ["proc", "tmpfs"]})]
    out = render("{{.ID}}\t{{.Image}}  {{.Labels}}\t {{.Mounts}}", rows, name="ps")
    assert out == "02f65160e14c\tredis:alpine  map[tier:backend]\t [proc tmpfs]\n"


def test_images_man_page_table_example():
    rows = [{"ID": "e3d42bcaf643", "Repository": "docker.io/kubernetes/pause", "Tag": "latest"},
            {"ID": "ebb91b73692b", "Repository": "<none>", "Tag": "<none>"}]
    out = render("table {{.ID}} {{.Repository}} {{.Tag}}", rows, name="images",
                 headers={"ID": "image id"})
    assert out == ("IMAGE ID      REPOSITORY                  TAG\n"
                   "e3d42bcaf643  docker.io/kubernetes/pause  latest\n"
                   "ebb91b73692b  <none>                      <none>\n")


def test_info_man_page_examples():
    info = podman_shaped({"Registries": {"search": ["registry.fedoraproject.org", "docker.io"]}})
    info["Registries"] = GoMap(info["Registries"])
    assert render_one("{{.Registries}}", info, name="info") == \
        "map[search:[registry.fedoraproject.org docker.io]]\n"
    assert render_one('{{index .Registries "search"}}', info, name="info") == \
        "[registry.fedoraproject.org docker.io]\n"
    assert render_one('{{range index .Registries "search"}}{{.}}\\n{{end}}', info, name="info") == \
        "registry.fedoraproject.org\ndocker.io\n\n"


def test_version_and_inspect_man_page_examples():
    assert render_one("{{.Client.Version}}", {"Client": {"Version": "4.3.1"}}, name="v") == "4.3.1\n"
    doc = podman_shaped({"Id": "abc", "GraphDriver": {"Name": "overlay"}, "ImageName": "nginx",
                         "State": {"Status": "running", "StartedAt": "2024-05-01T10:00:00.5Z"},
                         "Config": {"Labels": {"b": "2", "a": "1"}}})
    tmpl = "{{.ImageName}} {{.GraphDriver.Name}} {{.State.Status}} {{.ID}} {{.Id}} {{.Config.Labels}}"
    assert run(tmpl, doc) == "nginx overlay running abc abc map[a:1 b:2]"
    assert run("{{json .Config.Labels}} {{json .State.StartedAt}}", doc) == \
        '{"a":"1","b":"2"} "2024-05-01T10:00:00.5Z"'


def test_times_print_as_go_prints_them(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    import time

    time.tzset()
    assert str(GoTime(1_714_557_600_123_456_789)) == "2024-05-01 10:00:00.123456789 +0000 UTC"
    assert str(GoTime(1_714_557_600_000_000_000)) == "2024-05-01 10:00:00 +0000 UTC"
    assert GoTime(1_714_557_600_100_000_000).json() == "2024-05-01T10:00:00.1Z"


# -- Go's text/template ------------------------------------------------------------------------

DATA = {"Name": "web", "Names": ["a", "b", "c"], "Count": 3, "Zero": 0, "Empty": "",
        "Labels": GoMap({"b": "2", "a": "1"}), "State": {"Status": "running", "Pid": 7},
        "Nil": None, "Flag": True, "Ratio": 0.5}


@pytest.mark.parametrize(("text", "expected"), [
    ("{{.Name}}", "web"),
    ("{{.State.Status}}/{{.State.Pid}}", "running/7"),
    ("{{.Labels}} {{.Names}} {{.State}} {{.Nil}} {{.Flag}} {{.Ratio}}",
     "map[a:1 b:2] [a b c] {running 7} <nil> true 0.5"),
    ("{{.Labels.a}}|{{.Labels.missing}}|{{index .Labels \"missing\"}}|", "1|<no value>||"),
    ("{{json .}}", '{"Name":"web","Names":["a","b","c"],"Count":3,"Zero":0,"Empty":"",'
                   '"Labels":{"a":"1","b":"2"},"State":{"Status":"running","Pid":7},"Nil":null,'
                   '"Flag":true,"Ratio":0.5}'),
    ("{{if .Zero}}x{{else if .Empty}}y{{else if .Count}}z{{else}}w{{end}}", "z"),
    ("{{if and .Flag .Zero}}a{{else}}b{{end}} {{or .Zero .Empty .Name}} {{not .Flag}}", "b web false"),
    ("{{range $i, $n := .Names}}{{$i}}={{$n}};{{end}}", "0=a;1=b;2=c;"),
    ("{{range .Names}}{{if eq . \"b\"}}{{continue}}{{end}}{{.}}{{end}}", "ac"),
    ("{{range .Names}}{{if eq . \"b\"}}{{break}}{{end}}{{.}}{{end}}", "a"),
    ("{{range $k, $v := .Labels}}{{$k}}{{$v}}{{end}}", "a1b2"),
    ("{{range .Nil}}x{{else}}none{{end}}", "none"),
    ("{{with .State}}{{.Status}}{{end}}{{with .Empty}}x{{else}}-{{end}}", "running-"),
    ("{{$x := .Count}}{{if .Flag}}{{$x = 9}}{{end}}{{$x}}", "9"),
    ("{{range .Names}}{{$.Name}}{{end}}", "webwebweb"),
    ("{{.Names | len}} {{len .Labels}} {{len .Name}} {{len \"é\"}}", "3 2 3 2"),
    ("{{index .Names 1}} {{slice .Names 1 2}} {{slice .Name 1}}", "b [b] eb"),
    ("{{eq .Count 3}} {{ne .Name \"x\"}} {{lt 1 2}} {{le 2 2}} {{gt \"b\" \"a\"}} {{ge 1 2}}",
     "true true true true true false"),
    ("{{eq .Name \"x\" \"web\"}}", "true"),
    ("{{print 1 2 \"a\" \"b\" 3}}|{{println \"x\" 1}}", "1 2ab3|x 1\n"),
    ("{{upper .Name}} {{lower \"ABC\"}} {{title \"hello world\"}} {{join .Names \",\"}}",
     "WEB abc Hello World a,b,c"),
    ("{{split \"a:b\" \":\"}} {{truncate \"abcdef\" 3}}|{{pad \"x\" 1 2}}|{{pad \"\" 1 1}}|",
     "[a b] abc| x  ||"),
    ("{{(index .Names 0) | printf \"%s!\"}} {{.Name | printf \"%q\"}}", 'a! "web"'),
    ("{{html \"<a&b>\"}} {{urlquery \"a b&c\"}} {{js \"it's\"}}", "&lt;a&amp;b&gt; a+b%26c it\\'s"),
    ("a {{- /* comment */ -}} b {{- 3 }} {{ 4 -}} c", "ab3 4c"),
    ("{{\"tab\\there\"}} {{`raw\\t`}} {{'x'}} {{0x10}} {{1e3}} {{-2}}", "tab\there raw\\t 120 16 1000 -2"),
])
def test_go_semantics(text, expected):
    assert run(text, DATA) == expected


@pytest.mark.parametrize(("text", "message"), [
    ("{{.Nope}}", "can't evaluate field Nope in type struct"),
    ("{{.State.Nope}}", "can't evaluate field Nope in type struct"),
    ("{{.Nil.X}}", "nil pointer evaluating <nil>.X"),
    ("{{range .State}}{{end}}", "range can't iterate over {running 7}"),
    ("{{range .Name}}{{end}}", "range can't iterate over web"),
    ("{{.Name 1}}", "Name is not a method but has arguments"),
    ("{{index .Names 5}}", "error calling index: index out of range: 5"),
    ("{{index .State \"x\"}}", "error calling index: can't index item of type struct"),
    ("{{eq .Name 1}}", "incompatible types for comparison"),
    ("{{lt .Flag true}}", "invalid type for comparison"),
    ("{{len .Count}}", "len of type int"),
    ("{{upper .Count}}", "wrong type for value; expected string; got int"),
    ("{{join .Name \",\"}}", "expected []string"),
    ("{{printf \"%#v\" .Name}}", "%#v (Go syntax) is not supported"),
    ("{{\"x\" 1}}", "can't give argument to non-function"),
])
def test_runtime_errors_are_gos(text, message):
    with pytest.raises(TemplateError) as e:
        run(text, DATA)
    assert message in e.value.message
    assert e.value.message.startswith('template: t:1:')


@pytest.mark.parametrize(("text", "message"), [
    ("{{.Name", "unclosed action"),
    ("{{if .Flag}}x", "unexpected EOF"),
    ("{{end}}", "unexpected {{end}}"),
    ("{{nope .Name}}", 'function "nope" not defined'),
    ('{{define "x"}}{{end}}', "{{define}} is not supported"),
    ('{{template "x"}}', "{{template}} is not supported"),
    ("{{block \"x\" .}}{{end}}", "{{block}} is not supported"),
    ("{{break}}", "{{break}} outside {{range}}"),
    ("{{$x}}", "undefined variable"),
    ("{{.Name | }}", "missing value"),
    ("{{\"unterminated}}", "unterminated quoted string"),
    ("{{.Name ! }}", "bad character U+0021 '!'"),
])
def test_what_is_not_understood_is_refused(text, message):
    with pytest.raises(TemplateError) as e:
        Template("t", text)
    assert message in e.value.message


def test_methods_take_arguments():
    row = View({"Id": "x" * 64}, {"ID": "x" * 12, "Label": lambda k: {"tier": "db"}.get(k, "")})
    assert run('{{.ID}} {{.Label "tier"}} {{.Label "nope"}}|{{json .}}', row) == \
        'xxxxxxxxxxxx db |{"Id":"' + "x" * 64 + '"}'


def test_a_table_of_an_unknown_field_fails_before_printing_anything():
    with pytest.raises(TemplateError, match="can't evaluate field Foo"):
        render("table {{.ID}} {{.Foo}}", ROWS, name="ps")


@pytest.mark.parametrize(("value", "text"), [
    (1.0, "1"), (0.5, "0.5"), (1e6, "1e+06"), (123456.0, "123456"), (1234567.0, "1.234567e+06"),
    (0.0001, "0.0001"), (0.00001, "1e-05"), (-2.5, "-2.5"), (1e21, "1e+21"), (0.0, "0"),
])
def test_floats_print_as_go_prints_them(value, text):
    assert go_float(value) == text


@pytest.mark.parametrize(("fmt", "args", "text"), [
    ("%s|%5s|%-5s|%.2s", ("ab", "ab", "ab", "abc"), "ab|   ab|ab   |ab"),
    ("%d|%5d|%-5d|%05d|%+d|%x|%X|%o|%b|%c", (7, 7, 7, -7, 7, 255, 255, 8, 5, 65),
     "7|    7|7    |-0007|+7|ff|FF|10|101|A"),
    ("%v %v %v %v", (1, "a", True, [1, 2]), "1 a true [1 2]"),
    ("%q %q", ("a\"b\n", 65), "\"a\\\"b\\n\" 'A'"),
    ("%t %f %.2f %e %g %8.3f", (True, 1.5, 3.14159, 1234.5, 0.5, 2.0),
     "true 1.500000 3.14 1.234500e+03 0.5    2.000"),
    ("%x", ("hi",), "6869"),
    ("%d %s", ("x", 5), "%!d(string=x) %!s(int=5)"),
    ("%d %d", (1,), "1 %!d(MISSING)"),
    ("%d", (1, "extra"), "1%!(EXTRA string=extra)"),
    ("100%%", (), "100%"),
    ("%s", (["a", "b"],), "[a b]"),
])
def test_printf_is_gos(fmt, args, text):
    assert sprintf(fmt, args) == text


def test_headers_split_field_names_as_podman_does():
    assert camel_words("RunningFor") == ["Running", "For"]
    assert camel_words("ID") == ["ID"]
    assert camel_words("PDFLoader") == ["PDF", "Loader"]
    out = render("table {{.RunningFor}}\t{{.ExitCode}}", [{"RunningFor": "x", "ExitCode": 0}], name="ps")
    assert out.splitlines()[0] == "RUNNING FOR  EXIT CODE"
