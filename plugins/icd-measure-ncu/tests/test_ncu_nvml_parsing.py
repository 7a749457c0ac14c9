"""ncu CSV and NVML readings, parsed and reduced without a GPU (fixtures and a replayed NVML)."""

from __future__ import annotations

import itertools
from pathlib import Path
from types import SimpleNamespace

import pytest
from icd_measure_ncu import energy, ncu_csv
from icd_measure_ncu.l2 import command

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.mark.parametrize("name", ["ncu_raw.csv", "ncu_details.csv"])
def test_both_csv_layouts_give_the_same_sector_weighted_hit_rate(name):
    kernels = ncu_csv.parse((FIXTURES / name).read_text())
    assert [k["kernel"] for k in kernels] == ["ampere_sgemm_128x64_tn", "vectorized_elementwise_kernel"]
    assert kernels[0]["metrics"]["lts__t_sectors_op_read.sum"] == 1_200_000
    summary = ncu_csv.summarize(kernels)
    # (80 % × 1.4 M sectors + 20 % × 0.1 M sectors) / 1.5 M sectors
    assert summary["hit_pct"] == pytest.approx((80 * 1_400_000 + 20 * 100_000) / 1_500_000)
    assert summary["sectors"] == 1_500_000 and summary["kernels"] == 2


def test_bad_ncu_output_is_a_clear_error():
    with pytest.raises(ValueError, match="no ncu CSV header"):
        ncu_csv.parse("==PROF== ERR_NVGPUCTRPERM - no permission\n")
    with pytest.raises(ValueError, match="no kernel in the profile reports"):
        ncu_csv.summarize([{"id": "0", "kernel": "k", "metrics": {}}])


def test_ncu_command_never_locks_clocks_and_selects_the_region(tmp_path):
    cmd = command(["lts__t_sector_hit_rate.pct"], tmp_path / "r.json")
    assert cmd[:3] == ["ncu", "--clock-control", "none"]
    assert cmd[cmd.index("--nvtx-include") + 1] == "icd-region/" and "--csv" in cmd
    assert cmd[-3:] == ["-m", "icd_measure_ncu.region", str(tmp_path / "r.json")]


class ReplayedNVML:
    """An NVML stand-in replaying readings in the shape pynvml returns them."""

    NVML_FI_DEV_POWER_INSTANT, NVML_CLOCK_SM, NVML_CLOCK_MEM, NVML_TEMPERATURE_GPU = 186, 1, 2, 0

    class NVMLError(Exception):
        pass

    def __init__(self, energy_mj, power_mw, sm_clocks):
        self.energy = iter(energy_mj)
        self.power = itertools.cycle(power_mw)
        self.sm = itertools.cycle(sm_clocks)

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        return next(self.energy)

    def nvmlDeviceGetFieldValues(self, handle, fields):
        return [SimpleNamespace(nvmlReturn=0, value=SimpleNamespace(uiVal=next(self.power)))]

    def nvmlDeviceGetClockInfo(self, handle, kind):
        return next(self.sm) if kind == self.NVML_CLOCK_SM else 2619

    def nvmlDeviceGetTemperature(self, handle, kind):
        return 41


def test_energy_window_and_power_csv(monkeypatch):
    monkeypatch.setattr(energy, "MIN_WINDOW_S", 0.05)
    nvml = ReplayedNVML(energy_mj=[1_000_000, 1_350_000], power_mw=[300_000, 310_000], sm_clocks=[1980, 1980])
    window = energy.energy_window(nvml, None, run=lambda: None, sync=lambda: None, hz=200)
    assert window["joules"] == pytest.approx(350.0) and window["iterations"] > 0
    csv_text = energy.power_csv(window["samples"])
    header, first = csv_text.splitlines()[:2]
    assert header == "t_s,power_w,sm_clock_mhz,mem_clock_mhz,temperature_c"
    assert first.split(",")[1:] in (["300.000", "1980", "2619", "41"], ["310.000", "1980", "2619", "41"])
    assert energy.clock_spread(window["samples"]) == 0.0
    assert energy.clock_spread([(0, 1, 1980, 0, 0), (1, 1, 1755, 0, 0)]) == pytest.approx((1980 - 1755) / 1980)
