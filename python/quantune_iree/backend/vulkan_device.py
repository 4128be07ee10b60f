"""The Vulkan devices of this machine, as the Vulkan loader lists them: name and subgroup size.

`--verify` runs a Vulkan build here, and a build whose kernels assume another subgroup size than
the device's can be wrong on it for that reason alone (subgroup reductions built for 16 lanes on
8-lane lavapipe), so the device's subgroup size is read before anything runs. Read through the
loader's C API with ctypes: instance, physical devices, vkGetPhysicalDeviceProperties2 with
VkPhysicalDeviceSubgroupProperties chained (Vulkan 1.1)."""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

_API_1_1 = (1 << 22) | (1 << 12)
_STYPE_APPLICATION_INFO = 0
_STYPE_INSTANCE_CREATE_INFO = 1
_STYPE_PROPERTIES_2 = 1000059001
_STYPE_SUBGROUP_PROPERTIES = 1000094000
# VkPhysicalDeviceProperties: apiVersion, driverVersion, vendorID, deviceID, deviceType (4 bytes
# each), then deviceName[256]; inside VkPhysicalDeviceProperties2 it follows sType and pNext.
_NAME_OFFSET = 16 + 20
_PROPERTIES_2_BYTES = 4096  # VkPhysicalDeviceProperties2 is 840 bytes; room to spare


class _AppInfo(ctypes.Structure):
    _fields_ = [
        ("sType", ctypes.c_int32),
        ("pNext", ctypes.c_void_p),
        ("pApplicationName", ctypes.c_char_p),
        ("applicationVersion", ctypes.c_uint32),
        ("pEngineName", ctypes.c_char_p),
        ("engineVersion", ctypes.c_uint32),
        ("apiVersion", ctypes.c_uint32),
    ]


class _InstanceInfo(ctypes.Structure):
    _fields_ = [
        ("sType", ctypes.c_int32),
        ("pNext", ctypes.c_void_p),
        ("flags", ctypes.c_uint32),
        ("pApplicationInfo", ctypes.POINTER(_AppInfo)),
        ("enabledLayerCount", ctypes.c_uint32),
        ("ppEnabledLayerNames", ctypes.c_void_p),
        ("enabledExtensionCount", ctypes.c_uint32),
        ("ppEnabledExtensionNames", ctypes.c_void_p),
    ]


class _SubgroupProperties(ctypes.Structure):
    _fields_ = [
        ("sType", ctypes.c_int32),
        ("pNext", ctypes.c_void_p),
        ("subgroupSize", ctypes.c_uint32),
        ("supportedStages", ctypes.c_uint32),
        ("supportedOperations", ctypes.c_uint32),
        ("quadOperationsInAllStages", ctypes.c_uint32),
    ]


@dataclass(frozen=True)
class VulkanDevice:
    name: str
    subgroup_size: int


def vulkan_devices() -> list[VulkanDevice]:
    """Every physical device the loader reports, in its order (IREE's `vulkan` driver opens the
    first); [] without a loader or a driver."""
    try:
        vk = ctypes.CDLL("libvulkan.so.1")
    except OSError:
        return []
    app = _AppInfo(
        _STYPE_APPLICATION_INFO, None, b"quantune-iree", 1, b"quantune-iree", 1, _API_1_1
    )
    info = _InstanceInfo(
        _STYPE_INSTANCE_CREATE_INFO, None, 0, ctypes.pointer(app), 0, None, 0, None
    )
    instance = ctypes.c_void_p()
    if vk.vkCreateInstance(ctypes.byref(info), None, ctypes.byref(instance)) != 0:
        return []
    try:
        count = ctypes.c_uint32(0)
        if vk.vkEnumeratePhysicalDevices(instance, ctypes.byref(count), None) != 0:
            return []
        handles = (ctypes.c_void_p * count.value)()
        if vk.vkEnumeratePhysicalDevices(instance, ctypes.byref(count), handles) not in (0, 5):
            return []
        devices = []
        for handle in handles[: count.value]:
            subgroup = _SubgroupProperties(_STYPE_SUBGROUP_PROPERTIES, None, 0, 0, 0, 0)
            props = ctypes.create_string_buffer(_PROPERTIES_2_BYTES)
            ctypes.c_int32.from_buffer(props, 0).value = _STYPE_PROPERTIES_2
            ctypes.c_void_p.from_buffer(props, 8).value = ctypes.addressof(subgroup)
            vk.vkGetPhysicalDeviceProperties2(ctypes.c_void_p(handle), props)
            name = props.raw[_NAME_OFFSET : _NAME_OFFSET + 256].split(b"\0", 1)[0]
            devices.append(VulkanDevice(name.decode(errors="replace"), subgroup.subgroupSize))
        return devices
    finally:
        vk.vkDestroyInstance(instance, None)
