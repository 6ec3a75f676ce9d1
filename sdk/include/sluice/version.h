/*
 * The one place the SDK version is defined. The SDK major is the plugin ABI major:
 * a plugin built against SDK x.* loads into a host whose ABI major is x and whose ABI minor is at
 * least the plugin's. CMake reads this file for the project and SluiceSDK package versions.
 */
#ifndef SLUICE_VERSION_H
#define SLUICE_VERSION_H

#define SLUICE_SDK_VERSION_MAJOR 1
#define SLUICE_SDK_VERSION_MINOR 5
#define SLUICE_SDK_VERSION_PATCH 0

#define SLUICE_STRINGIFY_(x) #x
#define SLUICE_STRINGIFY(x) SLUICE_STRINGIFY_(x)
#define SLUICE_SDK_VERSION_STRING                                                 \
    SLUICE_STRINGIFY(SLUICE_SDK_VERSION_MAJOR)                                    \
    "." SLUICE_STRINGIFY(SLUICE_SDK_VERSION_MINOR) "." SLUICE_STRINGIFY( \
        SLUICE_SDK_VERSION_PATCH)

#endif /* SLUICE_VERSION_H */
