# Reads mdoc(7) pages and writes a C translation unit that compiles only if
# every structure of the library that the pages show in a literal display
# (.Bd -literal) is the header's own: each member the page shows exists in
# the header's structure under that name, with that type, at the place the
# page gives it, and the page leaves no member out.
#
#   awk -v shown=FILE -f man-structs.awk PAGE...  (see check-man-header.sh)
#
# A structure of the library is one whose tag starts with tw_; the
# programs of EXAMPLES declare structures of their own, which are skipped.
# For each structure shown, the output holds:
#
#   - the page's definition, under the tag tw__page_N, preceded by #line
#     so that the compiler's messages name the page and its line;
#   - per member, static assertions that the header's member has the
#     page's type and offset and comes after the member shown before it
#     (a member the header lacks fails to compile);
#   - an initializer of the header's structure with one element per member
#     shown: compiled with -Wmissing-field-initializers -Werror it fails,
#     naming the member, when the header has one the page leaves out, even
#     one that would fit in padding, where offsets and sizes cannot see it;
#     with more elements than members it fails too;
#   - an assertion that both structures have the same size.
#
# The tags of the structures shown are written to FILE, one a line.

function unescape(s) {
    gsub(/\\&/, "", s)
    gsub(/\\-/, "-", s)
    gsub(/\\\(aq/, "'", s)
    gsub(/\\\(dq/, "\"", s)
    gsub(/\\e/, "\\", s)
    return s
}

# The part of s outside comments; in_comment carries a comment over lines.
function strip_comments(s,    out, at) {
    out = ""
    while (s != "") {
        if (in_comment) {
            at = index(s, "*/")
            if (!at)
                return out
            s = substr(s, at + 2)
            in_comment = 0
        } else {
            at = index(s, "/*")
            if (!at)
                return out s
            out = out substr(s, 1, at - 1) " "
            s = substr(s, at + 2)
            in_comment = 1
        }
    }
    return out
}

# The name a declarator declares: f of (*f)(...), a of a[4], p of *p.
function declarator_name(d,    n) {
    if (match(d, /\([ \t]*\*[ \t]*[A-Za-z_][A-Za-z0-9_]*[ \t]*\)/)) {
        n = substr(d, RSTART, RLENGTH)
        gsub(/[^A-Za-z0-9_]/, "", n)
        return n
    }
    sub(/:[^:]*$/, "", d)
    while (sub(/\[[^\[\]]*\][ \t]*$/, "", d))
        ;
    sub(/[ \t]+$/, "", d)
    if (match(d, /[A-Za-z_][A-Za-z0-9_]*$/))
        return substr(d, RSTART, RLENGTH)
    return ""
}

# Adds the members one declaration declares (several when it has commas
# outside parentheses) to the structure being read.
function add_members(decl, line,    i, c, depth, start, part, n) {
    depth = 0
    start = 1
    for (i = 1; i <= length(decl) + 1; i++) {
        c = i <= length(decl) ? substr(decl, i, 1) : ","
        if (c == "(" || c == "[")
            depth++
        else if (c == ")" || c == "]")
            depth--
        else if (c == "," && depth == 0) {
            part = substr(decl, start, i - start)
            start = i + 1
            n = declarator_name(part)
            if (n == "") {
                printf "%s:%d: cannot find the member declared by \"%s\"\n",
                    FILENAME, line, part > "/dev/stderr"
                failed = 1
                continue
            }
            nmembers++
            member[nmembers] = n
            member_line[nmembers] = line
            member_array[nmembers] = part !~ /\([ \t]*\*/ && part ~ /\[/
        }
    }
}

# Points the compiler at the page's line for the next line of output.
function at_line(line) {
    printf "#line %d \"%s\"\n", line, FILENAME
}

# Writes the structure just read and the checks of its members.
function emit_struct(    i, m, init) {
    nstructs++
    print tag > shown
    at_line(open_line)
    printf "struct tw__page_%d {\n", nstructs
    for (i = 1; i <= nbody; i++)
        print body[i]
    print "};"
    if (nmembers == 0) {
        printf "%s:%d: %s shows no member\n", FILENAME, open_line, tag > "/dev/stderr"
        failed = 1
        return
    }
    for (i = 1; i <= nmembers; i++) {
        m = member[i]
        at_line(member_line[i])
        printf "_Static_assert(_Generic(&((struct %s *)0)->%s, " \
            "__typeof__(&((struct tw__page_%d *)0)->%s): 1, default: 0), " \
            "\"%s.%s: the header gives it another type\");\n",
            tag, m, nstructs, m, tag, m
        if (i > 1) {
            at_line(member_line[i])
            printf "_Static_assert(offsetof(struct %s, %s) > offsetof(struct %s, %s), " \
                "\"%s.%s: the header has it before %s\");\n",
                tag, m, tag, member[i - 1], tag, m, member[i - 1]
        }
        at_line(member_line[i])
        printf "_Static_assert(offsetof(struct %s, %s) == offsetof(struct tw__page_%d, %s), " \
            "\"%s.%s: the header has it at another offset\");\n",
            tag, m, nstructs, m, tag, m
    }
    # Each member shown, from a copy of the page's structure, so that the
    # element's type is the member's and no brace is elided; arrays, which
    # no expression initializes, from {0}.
    init = ""
    for (i = 1; i <= nmembers; i++)
        init = init (i > 1 ? ", " : "") (member_array[i] ? "{0}" : "p->" member[i])
    at_line(close_line)
    printf "void tw__all_%d(const struct tw__page_%d *p);\n", nstructs, nstructs
    at_line(close_line)
    printf "void tw__all_%d(const struct tw__page_%d *p) { const struct %s all = { %s }; (void)all; }\n",
        nstructs, nstructs, tag, init
    at_line(close_line)
    printf "_Static_assert(sizeof(struct %s) == sizeof(struct tw__page_%d), " \
        "\"%s: the header's structure has another size\");\n",
        tag, nstructs, tag
}

BEGIN {
    if (shown == "")
        shown = "/dev/null"
    print "/* Generated by man-structs.awk: the structures of the manual pages. */"
    print "#include <stddef.h>"
    print "#include \"tickwheel.h\""
}

FNR == 1 {
    if (in_literal || in_struct) {
        printf "%s: a display or a structure is not closed\n", prev_file > "/dev/stderr"
        failed = 1
    }
    in_literal = in_struct = in_comment = 0
    prev_file = FILENAME
}

/^\.Bd[ \t]+-literal/ {
    in_literal = 1
    next
}

/^\.Ed/ {
    if (in_struct) {
        printf "%s:%d: the display ends inside %s\n", FILENAME, FNR, tag > "/dev/stderr"
        failed = 1
    }
    in_literal = in_struct = in_comment = 0
    next
}

!in_literal {
    next
}

!in_struct {
    text = unescape($0)
    if (text !~ /^[ \t]*(typedef[ \t]+)?struct[ \t]+tw_[A-Za-z0-9_]*[ \t]*\{[ \t]*$/)
        next
    tag = text
    sub(/^[ \t]*(typedef[ \t]+)?struct[ \t]+/, "", tag)
    sub(/[^A-Za-z0-9_].*$/, "", tag)
    typedef = text ~ /^[ \t]*typedef/
    in_struct = 1
    in_comment = 0
    open_line = FNR
    nbody = nmembers = 0
    pending = ""
    next
}

{
    # A request inside the display, such as .Pp, is no C: keep the line
    # count with an empty line.
    if ($0 ~ /^\./) {
        body[++nbody] = ""
        next
    }
    text = unescape($0)
    code = strip_comments(text)
    if (code ~ /^[ \t]*\}/) {
        close_line = FNR
        rest = code
        sub(/^[ \t]*\}[ \t]*/, "", rest)
        sub(/[ \t]*;[ \t]*$/, "", rest)
        if (typedef ? rest != tag : rest != "") {
            printf "%s:%d: %s closes as \"%s\", the header's as \"%s\"\n",
                FILENAME, FNR, tag, rest, (typedef ? tag : "") > "/dev/stderr"
            failed = 1
        }
        if (pending ~ /[^ \t]/) {
            printf "%s:%d: %s ends inside a declaration\n", FILENAME, FNR, tag > "/dev/stderr"
            failed = 1
        }
        emit_struct()
        in_struct = 0
        next
    }
    body[++nbody] = text
    pending = pending " " code
    while ((at = index(pending, ";")) > 0) {
        decl = substr(pending, 1, at - 1)
        pending = substr(pending, at + 1)
        if (decl ~ /[{}]/) {
            printf "%s:%d: nested structures are not checked\n", FILENAME, FNR > "/dev/stderr"
            failed = 1
            continue
        }
        if (decl ~ /[^ \t]/)
            add_members(decl, FNR)
    }
}

END {
    if (in_literal || in_struct) {
        printf "%s: a display or a structure is not closed\n", prev_file > "/dev/stderr"
        failed = 1
    }
    exit failed
}
