package cli

// The terminal side of `show`: is stdout a terminal and how big, the
// width to lay the tree out for, whether to colour it, and the pager.
// Everything show prints is rendered (and escaped) first; the pager only
// ever receives that rendered output, never the run's raw bytes.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/term"
)

// terminal is what show knows of its stdout.
type terminal struct {
	file          *os.File // stdout, when it is a terminal
	width, height int      // its size; 0 when it could not be read
}

// stdoutTerminal looks at w: a terminal (TIOCGWINSZ for its size) or not.
func stdoutTerminal(w io.Writer) terminal {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return terminal{}
	}
	t := terminal{file: f}
	if cols, rows, err := term.GetSize(int(f.Fd())); err == nil {
		t.width, t.height = max(cols, 0), max(rows, 0)
	}
	return t
}

// envSize reads COLUMNS or LINES: a positive number, else 0.
func envSize(name string) int {
	n, err := strconv.Atoi(strings.TrimSpace(os.Getenv(name)))
	if err != nil || n <= 0 {
		return 0
	}
	return n
}

// outputWidth is the width show lays the tree out for: --width when given
// (0: no limit), else the terminal's, else COLUMNS for a terminal whose
// size cannot be read, else no limit. A pipe or a file gets whole lines
// whatever COLUMNS says: a script that reads show's output must not get
// lines cut because its shell exported COLUMNS (--width asks for it).
func outputWidth(flag int, flagSet bool, t terminal) int {
	switch {
	case flagSet:
		return flag
	case t.file == nil:
		return 0
	case t.width > 0:
		return t.width
	}
	return envSize("COLUMNS")
}

// colorModes are the values of --color.
var colorModes = []string{"auto", "always", "never"}

// useColor decides --color: always and never as said; auto colours a
// terminal only, and not when NO_COLOR is set and not empty
// (no-color.org) or TERM is dumb.
func useColor(mode string, t terminal) (bool, error) {
	switch mode {
	case "always":
		return true, nil
	case "never":
		return false, nil
	case "auto", "":
		return t.file != nil && os.Getenv("NO_COLOR") == "" && os.Getenv("TERM") != "dumb", nil
	}
	return false, fmt.Errorf("--color %q: want %s", mode, strings.Join(colorModes, ", "))
}

// rows is how many terminal rows out takes at width (0: one per line),
// counting runes, not our SGR codes (ESC … m: the only ESC show's output
// holds).
func rows(out []byte, width int) int {
	n := 0
	for _, line := range bytes.Split(bytes.TrimSuffix(out, []byte("\n")), []byte("\n")) {
		r := 1
		if c := utf8.RuneCount(line) - sgrBytes(line); width > 0 && c > width {
			r = (c + width - 1) / width
		}
		n += r
	}
	return n
}

// pagerCommand is the pager to run, from PAGER (unset: less, with -R
// when the output has colour); nil for none (PAGER empty or cat, or its
// program not found: the output is then printed directly).
func pagerCommand(color bool) *exec.Cmd {
	pager, set := os.LookupEnv("PAGER")
	if !set {
		pager = "less"
		if color {
			pager = "less -R"
		}
	}
	pager = strings.TrimSpace(pager)
	if pager == "" || pager == "cat" {
		return nil
	}
	var cmd *exec.Cmd
	if strings.ContainsAny(pager, "|&;<>()$`\\\"'*?[#~=%{}\n") {
		// Shell syntax: like git, through sh. A missing program shows
		// as sh's exit 127 (see page).
		cmd = exec.Command("sh", "-c", pager)
	} else {
		argv := strings.Fields(pager)
		path, err := exec.LookPath(argv[0])
		if err != nil {
			return nil
		}
		cmd = exec.Command(path, argv[1:]...)
	}
	cmd.Env = os.Environ()
	if _, set := os.LookupEnv("LESS"); !set {
		// git's defaults: quit if one screen, keep colours, do not clear
		// the screen on exit.
		cmd.Env = append(cmd.Env, "LESS=FRX")
	}
	return cmd
}

// page writes show's rendered output: through the pager when stdout is a
// terminal, the output is longer than its height and --no-pager was not
// given; directly otherwise, and when the pager cannot be started. A
// pager that fails after it started (the user quit it early, say) is not
// an error of show.
func page(out []byte, t terminal, width int, color, noPager bool, stdout, stderr io.Writer) error {
	height := t.height
	if height == 0 {
		height = envSize("LINES")
	}
	if t.file == nil || noPager || height == 0 || rows(out, width) <= height {
		_, err := stdout.Write(out)
		return err
	}
	cmd := pagerCommand(color)
	if cmd == nil {
		_, err := stdout.Write(out)
		return err
	}
	cmd.Stdin = bytes.NewReader(out)
	cmd.Stdout = t.file
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		_, err := stdout.Write(out)
		return err
	}
	err := cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 127 && len(cmd.Args) > 0 && cmd.Args[0] == "sh" {
		// sh -c could not find the pager's program: it read nothing.
		_, err := stdout.Write(out)
		return err
	}
	return nil
}

// sgrBytes counts the bytes of the SGR codes in line.
func sgrBytes(line []byte) int {
	n := 0
	for {
		i := bytes.IndexByte(line, 0x1b)
		if i < 0 {
			return n
		}
		j := bytes.IndexByte(line[i:], 'm')
		if j < 0 {
			return n
		}
		n += j + 1
		line = line[i+j+1:]
	}
}
