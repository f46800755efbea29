//go:build windows

package installer

import (
	"fmt"

	"golang.org/x/sys/windows"
)

// adminOnlySDDL: full control for SYSTEM and the Administrators group,
// inherited by every file and folder below, nothing inherited from
// %ProgramData% (whose default lets every local user read).
const adminOnlySDDL = "D:PAI(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)"

// restrictDir makes dir readable by SYSTEM and Administrators only: it
// holds node.key and data.key (and, on Windows, the data).
func restrictDir(dir string) error {
	sd, err := windows.SecurityDescriptorFromString(adminOnlySDDL)
	if err != nil {
		return fmt.Errorf("restrict %s: %w", dir, err)
	}
	dacl, _, err := sd.DACL()
	if err != nil {
		return fmt.Errorf("restrict %s: %w", dir, err)
	}
	err = windows.SetNamedSecurityInfo(dir, windows.SE_FILE_OBJECT,
		windows.DACL_SECURITY_INFORMATION|windows.PROTECTED_DACL_SECURITY_INFORMATION, nil, nil, dacl, nil)
	if err != nil {
		return fmt.Errorf("restrict %s: %w", dir, err)
	}
	return nil
}
