"""The benchmark's system-call counts: ``perf stat -x,`` output read back."""

from benchmarks.syscalls import parse, per_frame

# What perf 6.1 printed here for a process that sent 100 datagrams on a socketpair.
OUTPUT = """\
9316,,raw_syscalls:sys_enter,231617108,100.00,,
100,,syscalls:sys_enter_sendto,231617108,100.00,,
<not counted>,,syscalls:sys_enter_read,0,0.00,,
29,,syscalls:sys_enter_write,231617108,100.00,,
"""


def test_counts_are_read_by_name_and_uncounted_ones_left_out() -> None:
    assert parse(OUTPUT) == {"all": 9316, "sendto": 100, "write": 29}


def test_no_total_means_nothing_was_counted() -> None:
    assert parse("100,,syscalls:sys_enter_sendto,1,100.00,,\n") is None
    assert parse("") is None


def test_per_frame_divides_every_count() -> None:
    assert per_frame({"all": 450, "sendto": 199}, 100) == {"all": 4.5, "sendto": 1.99}
    assert per_frame(None, 100) is None
    assert per_frame({"all": 1}, 0) is None
